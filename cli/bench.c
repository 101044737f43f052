/* wsk bench: a load generator for WebSocket servers, built to measure them.
 *
 * Modes:
 *   echo      each connection keeps IN_FLIGHT messages outstanding and checks
 *             every echoed byte, the order of the echoes and their latency;
 *   raw-echo  the same frames without the opening handshake, against a plain
 *             TCP echo server (bench/rawecho_bench.c): the ceiling any echo
 *             server on this machine can reach;
 *   connect   TCP connect, opening handshake and close handshake, again and
 *             again on CONNECTIONS slots;
 *   idle      opens CONNECTIONS, holds them, then pings each one once;
 *   fanout    CONNECTIONS receivers and one sender on a broadcast server.
 *
 * The generator shares the machine with the server it measures, so its hot
 * path stays on the lower layers rather than the per-connection client of
 * ws.h: the frame codec of proto.h on non-blocking sockets this file manages,
 * one loop.h loop per thread. A thread reads into one big buffer and the
 * parser walks it in place (it keeps no payload); every frame a read burst
 * calls for is encoded into the connection's output and sent with one send().
 * Nothing is allocated per message: output buffers and the rings of send
 * times are per connection and reused.
 *
 * Payloads are printable ASCII, so text and binary messages carry the same
 * bytes (and echoed text needs no UTF-8 check: it must equal what was sent):
 *   bytes 0-7    an identifier, 48 bits in base 64: echo: the connection
 *                number << 28 | its message sequence; fanout: the sequence
 *   bytes 8-15   the send time, nanoseconds since the run's epoch, 48 bits
 *   bytes 16-    a slice of a fixed pattern, starting at an offset that
 *                depends on the sequence
 * Payloads shorter than 16 bytes carry a prefix of that.
 *
 * Threads: main() sets everything up and then only keeps time. It waits until
 * every worker has opened its connections, tells them to start (a post), to
 * stop after the duration (another post), prints the progress line, and sums
 * up when they have closed everything. Each worker owns a contiguous slice of
 * the connections; the counters main() reads are published with relaxed
 * atomics every tick, so the hot path has none.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_chat.h"
#include "bench_tls.h"
#include "cli.h"
#include "wsk.h"

#define DEFAULT_CONNECTIONS 100
#define DEFAULT_SIZE        16
#define DEFAULT_CHAT_SIZE   282 /* a chat message with a sentence of text */
#define DEFAULT_DURATION_MS 5000u
#define DEFAULT_RATE        100
#define MAX_CONNECTIONS     1000000 /* the identifier gives connections 20 bits */
#define MAX_THREADS         64
#define MAX_SIZE            (16u * 1024 * 1024)
#define MAX_IN_FLIGHT       4096
#define MAX_RATE            10000000

#define READ_CHUNK       (256u * 1024) /* per thread, reused by every connection */
#define READS_PER_WAKEUP 4             /* more only while reads fill the buffer */
#define RNG_POOL         16384         /* masking keys come from here, refilled whole */
#define OPEN_CONCURRENCY 256           /* handshakes in progress per thread */
#define OPEN_TIMEOUT_MS  10000u
#define DRAIN_TIMEOUT_MS 5000u  /* after the stop, for what is in flight... */
#define DRAIN_QUIET_MS   1000u  /* ...and longer while replies keep coming... */
#define DRAIN_MAX_MS     30000u /* ...but no longer than this */
#define CLOSE_TIMEOUT_MS 3000u  /* closing too, then DRAIN_QUIET_MS, DRAIN_MAX_MS */
#define TICK_MS          50u
#define PROGRESS_NS      1000000000ull
/* Connections per 127.0.0.x source address: well under the ~28,000
 * ephemeral ports, because connect() searches for a free port and that search
 * grows slow as the range fills (16,000 from one address took minutes). */
#define CONNS_PER_SOURCE 10000
#define HDR_LEN          16
#define PATTERN_PERIOD   61
#define MASK48           ((UINT64_C(1) << 48) - 1)
#define SEQ_BITS         28
#define FD_MARGIN        64

static const char bench_usage[] =
    "usage: wsk bench URL [URL...] [options]\n"
    "\n"
    "Puts load on the WebSocket server at URL (ws:// or wss://HOST[:PORT][/PATH])\n"
    "and reports what it sustained. Every message is checked byte for byte. wss://\n"
    "does a full TLS handshake per connection, verified as wsk connect does (the\n"
    "system's CA store, or --cacert; --insecure skips it). With several URLs\n"
    "(up to 8: servers that share rooms, e.g. wsk serve --redis) the connections\n"
    "go to them in turn; the fanout sender to the first.\n"
    "\n"
    "modes (--mode):\n"
    "  echo       each connection keeps IN_FLIGHT messages outstanding against an\n"
    "             echo server (wsk serve --echo); reports messages/s, MB/s and\n"
    "             latency percentiles; every echo must come back in order\n"
    "  raw-echo   the same masked frames without the opening handshake, against a\n"
    "             plain TCP echo server (tcp://HOST:PORT, e.g. rawecho_bench): the\n"
    "             ceiling, with no WebSocket work on the server at all\n"
    "  connect    TCP connect, opening handshake and close handshake in a loop on\n"
    "             CONNECTIONS slots at once; reports handshakes/s\n"
    "  idle       opens CONNECTIONS, holds them for the duration, then pings each\n"
    "             one; reports how many opened and answered\n"
    "  fanout     CONNECTIONS receivers and one sender sending RATE messages/s to a\n"
    "             broadcast server (wsk serve --broadcast); reports deliveries/s,\n"
    "             latency, and messages missing or duplicated per receiver\n"
    "\n"
    "options:\n"
    "  -c, --connections N   connections (connect: concurrent handshakes; fanout:\n"
    "                        receivers) (default 100)\n"
    "  -s, --size BYTES      payload size (default 16; fanout needs at least 16)\n"
    "  -w, --in-flight N     messages outstanding per connection, echo modes\n"
    "                        (default 1)\n"
    "  -d, --duration SECONDS\n"
    "                        how long to measure, after every connection is open\n"
    "                        (default 5)\n"
    "      --binary          send binary messages (default: text)\n"
    "      --mode MODE       echo, raw-echo, connect, idle or fanout (default echo)\n"
    "      --threads N       event loops on as many threads, connections spread\n"
    "                        across them (default 1)\n"
    "      --rate N          fanout: messages/s the sender sends (default 100);\n"
    "                        echo: a cap on messages/s over all connections\n"
    "                        (default: none)\n"
    "      --source-base N   bind source addresses from 127.0.0.(1 + N): give bench\n"
    "                        processes run side by side different bases (default 0)\n"
    "      --payload KIND    pattern: printable bytes repeating every 61 (default);\n"
    "                        chat: JSON chat messages with varying words, which\n"
    "                        compress like real ones (default size 282, min 16)\n"
    "      --deflate         offer permessage-deflate and compress every message\n"
    "                        sent; the server must accept it\n"
    "      --cacert FILE     wss://: trust only the CA certificates in FILE (PEM)\n"
    "      --insecure        wss://: do not verify the server's certificate\n"
    "      --json            print the result as one JSON object on stdout\n"
    "  -v, --verbose         report each error as it happens\n"
    "  -q, --quiet           no progress line, only the result\n"
    "  -h, --help            show this help\n"
    "\n"
    "On a terminal a progress line on stderr is updated every second. The result\n"
    "goes to stdout. MB are 10^6 bytes of payload, counted one way. Against a local\n"
    "IPv4 address, connection i binds the source address 127.0.0.(1 + N + i/10000),\n"
    "so tens of thousands of connections do not run out of ports. The open-file\n"
    "limit is raised to its hard limit when the connections need it.\n"
    "\n"
    "Exit status: 0 when every connection opened and every message came back as\n"
    "sent; 1 on any error, mismatch, loss or duplicate; 2 for a bad command line.\n";

/* ---- options ------------------------------------------------------------- */

enum bench_mode {
    MODE_ECHO,
    MODE_RAW_ECHO,
    MODE_CONNECT,
    MODE_IDLE,
    MODE_FANOUT,
};

static const char *const mode_names[] = {"echo", "raw-echo", "connect", "idle", "fanout"};

#define MAX_URLS 8

struct bench_options {
    const char *url; /* the first of urls */
    const char *urls[MAX_URLS];
    size_t num_urls;
    enum bench_mode mode;
    uint64_t connections;
    uint64_t size;
    uint64_t in_flight;
    uint64_t threads;
    uint64_t rate; /* 0: none (echo) */
    uint64_t source_base;
    uint32_t duration_ms;
    const char *ca_file;
    bool is_insecure;
    bool is_chat;    /* --payload chat */
    bool is_deflate; /* --deflate */
    bool is_binary;
    bool is_json;
    int verbosity;
};

enum {
    OPT_BINARY = 256,
    OPT_MODE,
    OPT_THREADS,
    OPT_RATE,
    OPT_JSON,
    OPT_SOURCE_BASE,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_PAYLOAD,
    OPT_DEFLATE,
};

static const struct option bench_longopts[] = {
    {"connections", required_argument, NULL, 'c'},
    {"size", required_argument, NULL, 's'},
    {"in-flight", required_argument, NULL, 'w'},
    {"duration", required_argument, NULL, 'd'},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"mode", required_argument, NULL, OPT_MODE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"rate", required_argument, NULL, OPT_RATE},
    {"json", no_argument, NULL, OPT_JSON},
    {"source-base", required_argument, NULL, OPT_SOURCE_BASE},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"deflate", no_argument, NULL, OPT_DEFLATE},
    CLI_COMMON_LONGOPTS,
};

/* Returns 0 to run, -1 after --help, or an exit status (> 0) for an error. */
static int parse_options(struct bench_options *opt, int argc, char **argv)
{
    bool has_rate = false, has_size = false;
    int c, rv;

    opt->mode = MODE_ECHO;
    opt->connections = DEFAULT_CONNECTIONS;
    opt->size = DEFAULT_SIZE;
    opt->in_flight = 1;
    opt->threads = 1;
    opt->duration_ms = DEFAULT_DURATION_MS;
    opt->verbosity = CLI_NORMAL;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":c:s:w:d:vqh", bench_longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (cli_parse_count(optarg, 1, MAX_CONNECTIONS, &opt->connections) < 0)
                return cli_usage_error("--connections '%s': expected a number from 1 to %d", optarg,
                                       MAX_CONNECTIONS);
            break;
        case 's':
            if (cli_parse_bytes(optarg, MAX_SIZE, &opt->size) < 0)
                return cli_usage_error("--size '%s': expected a size from 1 to 16M, like 16, "
                                       "64k or 1M",
                                       optarg);
            has_size = true;
            break;
        case 'w':
            if (cli_parse_count(optarg, 1, MAX_IN_FLIGHT, &opt->in_flight) < 0)
                return cli_usage_error("--in-flight '%s': expected a number from 1 to %d", optarg,
                                       MAX_IN_FLIGHT);
            break;
        case 'd':
            if (cli_parse_seconds(optarg, &opt->duration_ms) < 0 || opt->duration_ms == 0)
                return cli_usage_error("--duration '%s': expected positive seconds like 5 or "
                                       "0.5",
                                       optarg);
            break;
        case OPT_BINARY:
            opt->is_binary = true;
            break;
        case OPT_MODE: {
            size_t i;
            for (i = 0; i < sizeof mode_names / sizeof mode_names[0]; i++)
                if (!strcmp(optarg, mode_names[i]))
                    break;
            if (i == sizeof mode_names / sizeof mode_names[0])
                return cli_usage_error("--mode '%s': expected echo, raw-echo, connect, idle or "
                                       "fanout",
                                       optarg);
            opt->mode = (enum bench_mode)i;
            break;
        }
        case OPT_THREADS:
            if (cli_parse_count(optarg, 1, MAX_THREADS, &opt->threads) < 0)
                return cli_usage_error("--threads '%s': expected a number from 1 to %d", optarg,
                                       MAX_THREADS);
            break;
        case OPT_RATE:
            if (cli_parse_count(optarg, 1, MAX_RATE, &opt->rate) < 0)
                return cli_usage_error("--rate '%s': expected messages per second from 1 to %d",
                                       optarg, MAX_RATE);
            has_rate = true;
            break;
        case OPT_JSON:
            opt->is_json = true;
            break;
        case OPT_CACERT:
            if (!*optarg)
                return cli_usage_error("--cacert needs a file");
            opt->ca_file = optarg;
            break;
        case OPT_INSECURE:
            opt->is_insecure = true;
            break;
        case OPT_PAYLOAD:
            if (strcmp(optarg, "pattern") && strcmp(optarg, "chat"))
                return cli_usage_error("--payload '%s': expected pattern or chat", optarg);
            opt->is_chat = !strcmp(optarg, "chat");
            break;
        case OPT_DEFLATE:
            opt->is_deflate = true;
            break;
        case OPT_SOURCE_BASE:
            if (cli_parse_count(optarg, 0, 150, &opt->source_base) < 0)
                return cli_usage_error("--source-base '%s': expected a number from 0 to 150",
                                       optarg);
            break;
        default:
            if ((rv = cli_common_option(c, argv, bench_usage, bench_longopts, CLI_VERBOSE,
                                        &opt->verbosity)) != 0)
                return rv;
            break;
        }
    }
    if (optind >= argc)
        return cli_usage_error("a URL is needed, like ws://127.0.0.1:8080/");
    while (optind < argc) {
        if (opt->num_urls == MAX_URLS)
            return cli_usage_error("at most %d URLs", MAX_URLS);
        opt->urls[opt->num_urls++] = argv[optind++];
    }
    opt->url = opt->urls[0];
    if (opt->is_chat && !has_size)
        opt->size = DEFAULT_CHAT_SIZE;
    if (opt->is_chat && opt->size < HDR_LEN)
        return cli_usage_error("--payload chat needs --size of at least %d", HDR_LEN);
    if (opt->mode == MODE_RAW_ECHO && opt->is_deflate)
        return cli_usage_error("--deflate needs a WebSocket handshake: not with raw-echo");
    if (opt->ca_file && opt->is_insecure)
        return cli_usage_error("--cacert and --insecure contradict each other: with --insecure "
                               "nothing is verified");

    if (opt->mode == MODE_FANOUT) {
        if (opt->size < HDR_LEN)
            return cli_usage_error("fanout needs --size of at least %d (sequence and send time)",
                                   HDR_LEN);
        if (!has_rate)
            opt->rate = DEFAULT_RATE;
    } else if (has_rate && opt->mode != MODE_ECHO && opt->mode != MODE_RAW_ECHO) {
        return cli_usage_error("--rate applies to the echo and fanout modes");
    }
    /* A thread with no connection would only wait. */
    uint64_t total = opt->connections + (opt->mode == MODE_FANOUT);
    if (opt->threads > total)
        opt->threads = total;
    return 0;
}

/* ---- the target ---------------------------------------------------------- */

struct bench_target {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    bool is_loopback4; /* IPv4 127.0.0.0/8: source addresses can be spread */
    bool is_tls;       /* wss:// */
    char *host;        /* Host header, "name[:port]" */
    char *tls_name;    /* wss://: the name or address the certificate must carry */
    char *target;      /* path and query */
};

/* ws://HOST[:PORT][/PATH][?QUERY] or, for raw-echo, tcp://HOST:PORT, split
 * by wsk_url_parse(). The name is resolved once, here: a benchmark must not
 * measure the resolver. */
static int parse_url(const char *url, enum bench_mode mode, struct bench_target *t)
{
    const char *expected = mode == MODE_RAW_ECHO ? "expected ws://HOST[:PORT][/PATH] or "
                                                   "tcp://HOST:PORT"
                                                 : "expected ws:// or wss://HOST[:PORT][/PATH]";
    struct wsk_url u;
    if (wsk_url_parse(url, strlen(url), &u) < 0) {
        cli_error("'%s': %s (at byte %zu); %s, HOST a name, an IPv4 address or an IPv6 "
                  "address in brackets",
                  url, u.error, u.error_at, expected);
        return -1;
    }
    if (u.scheme == WSK_URL_WSS && mode == MODE_RAW_ECHO) {
        cli_error("'%s': raw-echo has no TLS: expected tcp://HOST:PORT or ws://", url);
        return -1;
    }
    if (u.scheme != WSK_URL_WS && u.scheme != WSK_URL_WSS &&
        !(u.scheme == WSK_URL_TCP && mode == MODE_RAW_ECHO)) {
        cli_error("'%s': %s", url, expected);
        return -1;
    }

    char host[256], port[8];
    if (u.host.len >= sizeof host) {
        cli_error("'%s': the host name is too long", url);
        return -1;
    }
    memcpy(host, u.host.ptr, u.host.len);
    host[u.host.len] = '\0';
    t->is_tls = u.scheme == WSK_URL_WSS;
    if (t->is_tls && !(t->tls_name = strdup(host))) {
        cli_error("out of memory");
        return -1;
    }
    snprintf(port, sizeof port, "%u", (unsigned)u.port);
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rv = getaddrinfo(host, port, &hints, &res);
    if (rv != 0) {
        cli_error("'%s': cannot resolve %s: %s", url, host, gai_strerror(rv));
        return -1;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addr_len = res->ai_addrlen;
    if (res->ai_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)res->ai_addr;
        t->is_loopback4 = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    freeaddrinfo(res);

    size_t host_cap = u.host.len + 9, target_cap = strlen(url) + 2;
    t->host = malloc(host_cap);
    t->target = malloc(target_cap);
    if (!t->host || !t->target || wsk_url_host_header(&u, t->host, host_cap) < 0 ||
        wsk_url_request_target(&u, t->target, target_cap) < 0) {
        cli_error("out of memory");
        return -1;
    }
    return 0;
}

/* ---- payloads ------------------------------------------------------------ */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void encode48(uint8_t out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)b64_alphabet[(v >> (42 - 6 * i)) & 63];
}

/* Returns the value, or UINT64_MAX when a byte is not of the alphabet. */
static uint64_t decode48(const uint8_t in[8])
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        unsigned d;
        uint8_t ch = in[i];
        if (ch >= 'A' && ch <= 'Z')
            d = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            d = ch - 'a' + 26u;
        else if (ch >= '0' && ch <= '9')
            d = ch - '0' + 52u;
        else if (ch == '-')
            d = 62;
        else if (ch == '_')
            d = 63;
        else
            return UINT64_MAX;
        v = v << 6 | d;
    }
    return v;
}

static void make_header(uint8_t out[HDR_LEN], uint64_t id48, uint64_t time_ns)
{
    encode48(out, id48 & MASK48);
    encode48(out + 8, time_ns & MASK48);
}

/* The filler every payload slices from: size + PATTERN_PERIOD bytes, so the
 * slice for any sequence fits. */
static uint8_t *make_pattern(size_t size)
{
    size_t len = size + PATTERN_PERIOD;
    uint8_t *p = malloc(len);

    if (!p)
        return NULL;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)b64_alphabet[(i * 7 + i / 64) & 63];
    return p;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- latency histogram ---------------------------------------------------- */

/* Log-linear buckets, as in HdrHistogram: values below 128 ns exactly, above
 * that 64 buckets per power of two (under 1.6% error), 30 KiB in all however
 * many samples there are. */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_HALF     (HIST_SUB / 2)
#define HIST_BUCKETS  (HIST_SUB + (64 - HIST_SUB_BITS) * HIST_HALF)

struct hist {
    uint64_t count;
    uint64_t max;
    uint64_t buckets[HIST_BUCKETS];
};

static size_t hist_index(uint64_t v)
{
    if (v < HIST_SUB)
        return (size_t)v;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - (HIST_SUB_BITS - 1);
    return HIST_SUB + (shift - 1) * HIST_HALF + (size_t)((v >> shift) - HIST_HALF);
}

/* The highest value that falls in bucket i. */
static uint64_t hist_bucket_value(size_t i)
{
    if (i < HIST_SUB)
        return i;
    size_t k = i - HIST_SUB;
    unsigned shift = (unsigned)(k / HIST_HALF) + 1;
    uint64_t mant = HIST_HALF + k % HIST_HALF;
    return ((mant + 1) << shift) - 1;
}

static void hist_record(struct hist *h, uint64_t v)
{
    h->buckets[hist_index(v)]++;
    h->count++;
    if (v > h->max)
        h->max = v;
}

static void hist_merge(struct hist *into, const struct hist *from)
{
    for (size_t i = 0; i < HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    if (from->max > into->max)
        into->max = from->max;
}

static uint64_t hist_percentile(const struct hist *h, double p)
{
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.5), seen = 0;

    if (h->count == 0)
        return 0;
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_value(i);
            return v < h->max ? v : h->max;
        }
    }
    return h->max;
}

/* ---- state --------------------------------------------------------------- */

enum err_kind {
    ERR_CONNECT,  /* a connection or handshake failed */
    ERR_PROTOCOL, /* a bad frame, an unexpected close, a socket error */
    ERR_MISMATCH, /* a message that is not what was sent, or out of order */
    ERR_TIMEOUT,  /* echoes, pongs or close handshakes that did not come */
    ERR_KINDS,
};

static const char *const err_names[] = {"connect", "protocol", "mismatch", "timeout"};

enum conn_state {
    CS_OFF,
    CS_CONNECTING, /* TCP connect in progress */
    CS_TLS,        /* wss://: TLS handshake in progress */
    CS_HANDSHAKE,  /* upgrade request sent, waiting for the 101 */
    CS_OPEN,
    CS_CLOSING,    /* our close frame sent (raw: our FIN), waiting for the peer's */
    CS_CLOSE_WAIT, /* close frames exchanged, waiting for the server's FIN */
};

enum conn_role {
    ROLE_ECHO,
    ROLE_CYCLE, /* connect mode: one handshake after another */
    ROLE_IDLE,
    ROLE_RECEIVER,
    ROLE_SENDER,
};

enum phase {
    PH_OPENING, /* opening this worker's connections */
    PH_READY,   /* all settled, waiting for the start */
    PH_RUN,     /* measuring */
    PH_DRAIN,   /* no new work: waiting for what is in flight */
    PH_CLOSING, /* close handshakes */
    PH_DONE,
};

struct worker;

struct bconn {
    struct wsk_io io; /* io.fd is -1 when no socket is open */
    struct worker *w;
    struct bench_tls *tls;    /* wss:// only, while the socket is open */
    struct wsk_deflate *zctx; /* --deflate: from the handshake to the next open */
    uint8_t *expect;          /* --payload chat: the body of the message being read */
    bool is_compressed;       /* the message being read has RSV1 */
    uint64_t wire_len;        /* its payload bytes as received */
    uint32_t id;
    uint8_t state;
    uint8_t role;
    uint8_t msg_opcode;
    uint8_t ctl_len;
    bool is_opening;      /* counted in the worker's handshakes in progress */
    bool is_pinged;       /* idle: waiting for the pong */
    bool is_starved;      /* echo --rate: waiting for tokens */
    bool is_restart;      /* connect: open again at the next tick */
    bool has_failed;      /* an error was counted for this connection */
    bool was_opened;      /* the handshake succeeded once */
    uint64_t deadline_ms; /* 0: none */
    uint64_t started_ns;  /* when the TCP connect began */
    struct wsk_frame_parser parser;
    struct wsk_http_parser http;
    char key[25];
    uint8_t *out; /* frames not sent yet: out[out_off..out_len) */
    size_t out_off;
    size_t out_len;
    size_t out_cap;
    char *head; /* the start of a response head that came in pieces */
    size_t head_len;
    uint64_t *ring;      /* echo: send time of each message in flight, by sequence */
    uint64_t sent;       /* echo: sequence of the next message */
    uint64_t received;   /* echo: sequence of the next echo; fanout: next expected sequence */
    uint64_t msg_off;    /* bytes of the current message seen */
    uint64_t msg_seq;    /* its sequence */
    uint64_t missing;    /* fanout receiver */
    uint64_t duplicates; /* fanout receiver */
    struct bconn *next_starved;
    uint8_t mhdr[HDR_LEN]; /* expected (echo) or received (fanout) payload header */
    uint8_t ctl[125];      /* a control frame's payload */
};

struct worker_stats {
    uint64_t opened;
    uint64_t open_failed;
    uint64_t messages; /* echoes or deliveries inside the measuring window */
    uint64_t bytes;
    uint64_t wire_bytes; /* --deflate: payload bytes of the messages counted, as received */
    uint64_t cycles;     /* connect: complete connect-handshake-close cycles */
    uint64_t answered;
    uint64_t sent; /* fanout sender */
    uint64_t missing;
    uint64_t duplicates;
    uint64_t receivers_with_loss;
    uint64_t errors[ERR_KINDS];
};

/* What main() reads while the workers run. */
struct worker_live {
    _Atomic uint64_t opened;
    _Atomic uint64_t open_failed;
    _Atomic uint64_t done; /* messages, deliveries or cycles */
    _Atomic uint64_t errors;
    _Atomic uint64_t sent;
};

struct bench;

struct worker {
    struct bench *b;
    unsigned index;
    pthread_t thread;
    bool has_thread;
    struct wsk_loop *loop;
    struct bconn *conns;
    size_t num_conns;
    size_t next_open;
    size_t num_opening;
    size_t num_live; /* connections with a socket */
    bool is_in_open_more;
    enum phase phase;
    uint64_t phase_deadline_ms;
    uint64_t phase_max_ms;     /* hard limit of the drain or the closing */
    uint64_t last_progress_ms; /* when a reply last came */
    uint64_t rx_ns;            /* when the current read returned, since the epoch */
    uint8_t *rbuf;
    uint8_t *plain;   /* --payload chat or --deflate: a message before compression */
    struct cli_buf z; /* --deflate: the compressed message (memory kept between messages) */
    size_t rng_off;
    uint8_t rng[RNG_POOL];
    struct wsk_timer tick;
    struct wsk_timer send_timer; /* fanout sender, or echo --rate tokens */
    struct wsk_defer check;      /* phase changes, out of the I/O callbacks */
    struct wsk_post go_post;
    struct wsk_post stop_post;
    uint64_t outstanding;   /* echo: messages in flight on every connection */
    uint64_t pings_pending; /* idle */
    size_t cycles_active;   /* connect */
    double tokens;          /* echo --rate */
    double rate;            /* echo --rate: this worker's share */
    uint64_t tokens_ns;
    struct bconn *starved;
    uint64_t send_start_ns; /* fanout sender */
    struct worker_stats st;
    struct worker_live live;
    struct hist hist;
    char first_error[ERR_KINDS][200];
    struct wsk_http_response resp;
};

struct bench {
    struct bench_options opt;
    struct bench_target targets[MAX_URLS]; /* connection i goes to i % num_urls */
    struct worker *workers;
    size_t num_workers;
    struct bconn *conns;
    size_t num_conns;
    uint8_t *pattern;
    struct bench_tls_ctx *tls_ctx;                /* when a URL is wss:// */
    struct wsk_deflate_config zcfg;               /* --deflate: what we offered */
    char ext_header[WSK_DEFLATE_HEADER_MAX + 32]; /* and how */
    uint64_t epoch_ns;
    uint8_t first_byte; /* FIN and the data opcode */
    _Atomic size_t num_ready;
    _Atomic size_t num_finished;
    _Atomic uint64_t fanout_sent; /* what the sender sent in all, once known */
    _Atomic bool is_fanout_sent_known;
    uint64_t go_ns;
    uint64_t stop_ns;
};

/* Where connection c goes: the URLs in turn (the fanout sender, connection
 * 0, to the first). */
static const struct bench_target *target_of(const struct bconn *c)
{
    const struct bench *b = c->w->b;
    return &b->targets[c->id % b->opt.num_urls];
}

static uint64_t rel_ns(const struct bench *b)
{
    return now_ns() - b->epoch_ns;
}

static void rng_bytes(struct worker *w, uint8_t *out, size_t len)
{
    if (w->rng_off + len > sizeof w->rng) {
        arc4random_buf(w->rng, sizeof w->rng);
        w->rng_off = 0;
    }
    memcpy(out, w->rng + w->rng_off, len);
    w->rng_off += len;
}

static void schedule_check(struct worker *w)
{
    wsk_defer_start(w->loop, &w->check);
}

static void record_error(struct worker *w, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void record_error(struct worker *w, enum err_kind kind, const char *fmt, ...)
{
    char msg[sizeof w->first_error[0]];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->st.errors[kind]++ == 0)
        memcpy(w->first_error[kind], msg, sizeof msg);
    cli_verbose("%s error: %s", err_names[kind], msg);
}

/* ---- connections: sockets and output ------------------------------------- */

static void conn_open(struct bconn *c);
static void conn_end(struct bconn *c, bool is_clean);
static int conn_input(struct bconn *c, uint8_t *buf, size_t len);

static void conn_fail(struct bconn *c, enum err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_fail(struct bconn *c, enum err_kind kind, const char *fmt, ...)
{
    char msg[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    record_error(c->w, kind, "connection %u: %s", (unsigned)c->id, msg);
    c->has_failed = true;
    conn_end(c, false);
}

/* Room for n more bytes of output; NULL when out of memory. */
static uint8_t *conn_reserve(struct bconn *c, size_t n)
{
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_cap - c->out_len < n && c->out_off) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (c->out_cap - c->out_len < n) {
        size_t cap = c->out_cap ? c->out_cap : 256;
        while (cap - c->out_len < n)
            cap *= 2;
        uint8_t *p = realloc(c->out, cap);
        if (!p)
            return NULL;
        c->out = p;
        c->out_cap = cap;
    }
    return c->out + c->out_len;
}

static void conn_watch(struct bconn *c)
{
    unsigned events = WSK_IO_READ | (c->out_off < c->out_len ? WSK_IO_WRITE : 0);
    int rv;

    if (c->io.fd < 0 || c->io.events == events)
        return;
    rv = wsk_io_start(c->w->loop, &c->io, events);
    if (rv < 0)
        conn_fail(c, ERR_PROTOCOL, "cannot watch the socket: %s", wsk_strerror(rv));
}

/* Sends what is queued, as much as the socket takes. Returns -1 when the
 * connection ended. */
static int conn_flush(struct bconn *c)
{
    while (c->out_off < c->out_len) {
        if (c->tls) {
            char err[160];
            ssize_t n = bench_tls_write(c->tls, c->out + c->out_off, c->out_len - c->out_off, err,
                                        sizeof err);
            if (n == BENCH_TLS_WANT_READ || n == BENCH_TLS_WANT_WRITE)
                break; /* read interest is always on; write interest follows below */
            if (n < 0) {
                conn_fail(c, ERR_PROTOCOL, "send: %s",
                          n == BENCH_TLS_EOF ? "the server closed the TLS session" : err);
                return -1;
            }
            c->out_off += (size_t)n;
            continue;
        }
        ssize_t n = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(c, ERR_PROTOCOL, "send: %s", strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        /* raw-echo closes with a FIN, once everything before it is out. */
        if (c->state == CS_CLOSING && c->w->b->opt.mode == MODE_RAW_ECHO)
            shutdown(c->io.fd, SHUT_WR);
    }
    conn_watch(c);
    return c->state == CS_OFF ? -1 : 0;
}

static int conn_queue_control(struct bconn *c, uint8_t opcode, const uint8_t *payload, size_t len)
{
    uint8_t key[4];
    uint8_t *p = conn_reserve(c, WSK_FRAME_HEADER_MAX + 125);
    int64_t n;

    if (!p) {
        conn_fail(c, ERR_PROTOCOL, "out of memory");
        return -1;
    }
    rng_bytes(c->w, key, sizeof key);
    n = wsk_frame_encode(p, WSK_FRAME_HEADER_MAX + 125, (uint8_t)(WSK_FRAME_FIN | opcode), payload,
                         len, key);
    if (n < 0) {
        conn_fail(c, ERR_PROTOCOL, "cannot encode a control frame: %s", wsk_strerror((int)n));
        return -1;
    }
    c->out_len += (size_t)n;
    return 0;
}

/* Starts our side of the close: a close frame (1000), or for raw-echo, where
 * nothing would answer one, a FIN. */
static void conn_start_close(struct bconn *c)
{
    if (c->w->b->opt.mode == MODE_RAW_ECHO) {
        c->state = CS_CLOSING;
        (void)conn_flush(c);
        return;
    }
    uint8_t payload[125];
    int len = wsk_close_payload_encode(payload, WSK_CLOSE_NORMAL, NULL, 0);
    if (conn_queue_control(c, WSK_OP_CLOSE, payload, (size_t)len) < 0)
        return;
    c->state = CS_CLOSING;
    (void)conn_flush(c);
}

/* ---- opening -------------------------------------------------------------- */

static void on_io(struct wsk_loop *loop, struct wsk_io *io, unsigned events);

/* Every client socket to a 127.x address binds its own source address first,
 * 127.0.0.(1 + base + id/10000): one source address has about 28,000 ephemeral ports
 * toward one server port. IP_BIND_ADDRESS_NO_PORT leaves the port to connect(),
 * which can then share ports between destinations. */
static void bind_source(int fd, uint32_t base, uint32_t id)
{
    struct sockaddr_in sin = {0};
    int one = 1;

    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl((127u << 24) | (1u + base + id / CONNS_PER_SOURCE));
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    (void)bind(fd, (const struct sockaddr *)&sin, sizeof sin);
}

static void conn_established(struct bconn *c)
{
    struct worker *w = c->w;
    struct bench *b = w->b;
    struct wsk_frame_config cfg;

    wsk_frame_config_init(&cfg);
    /* Raw echo servers send our own masked frames back. */
    cfg.role = b->opt.mode == MODE_RAW_ECHO ? WSK_ROLE_SERVER : WSK_ROLE_CLIENT;
    cfg.no_utf8_check = true; /* every byte is compared with what was sent */
    if (c->zctx)
        cfg.rsv_allowed = WSK_FRAME_RSV1;
    wsk_frame_parser_init(&c->parser, &cfg);
    c->state = CS_OPEN;
    c->was_opened = true;
    c->deadline_ms = 0;
    c->msg_off = 0;
    w->st.opened++;
    if (c->is_opening) {
        c->is_opening = false;
        w->num_opening--;
        schedule_check(w);
    }
    if (c->role == ROLE_CYCLE) {
        if (w->phase == PH_RUN)
            hist_record(&w->hist, now_ns() - c->started_ns);
        c->deadline_ms = wsk_loop_now(w->loop) + CLOSE_TIMEOUT_MS;
        conn_start_close(c);
    }
}

static void on_tls(struct bconn *c);
static void send_upgrade(struct bconn *c);

static void on_connected(struct bconn *c)
{
    struct worker *w = c->w;
    struct bench *b = w->b;
    int err = 0;
    socklen_t len = sizeof err;

    if (getsockopt(c->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        conn_fail(c, ERR_CONNECT, "connect: %s", strerror(err));
        return;
    }
    if (target_of(c)->is_tls) {
        c->tls = bench_tls_new(b->tls_ctx, c->io.fd, target_of(c)->tls_name);
        if (!c->tls) {
            conn_fail(c, ERR_CONNECT, "cannot start TLS: out of memory");
            return;
        }
        c->state = CS_TLS;
        on_tls(c);
        return;
    }
    c->state = CS_HANDSHAKE;
    if (b->opt.mode == MODE_RAW_ECHO) {
        conn_established(c);
        conn_watch(c);
        return;
    }
    send_upgrade(c);
}

/* Drives the TLS handshake; once it is done, sends the upgrade request. */
static void on_tls(struct bconn *c)
{
    char err[160];
    int rv = bench_tls_handshake(c->tls, err, sizeof err);

    if (rv == 0) {
        c->state = CS_HANDSHAKE;
        send_upgrade(c);
        return;
    }
    if (rv == BENCH_TLS_WANT_READ || rv == BENCH_TLS_WANT_WRITE) {
        rv = wsk_io_start(c->w->loop, &c->io,
                          rv == BENCH_TLS_WANT_READ ? WSK_IO_READ : WSK_IO_WRITE);
        if (rv < 0)
            conn_fail(c, ERR_CONNECT, "cannot watch the socket: %s", wsk_strerror(rv));
        return;
    }
    conn_fail(c, ERR_CONNECT, "%s", err);
}

static void send_upgrade(struct bconn *c)
{
    struct worker *w = c->w;
    uint8_t random16[16];
    rng_bytes(w, random16, sizeof random16);
    wsk_handshake_client_key(random16, c->key);
    const struct bench_target *t = target_of(c);
    struct wsk_handshake_client_request req = {
        .host = t->host,
        .target = t->target,
        .key = c->key,
        .extra_headers = w->b->opt.is_deflate ? w->b->ext_header : NULL,
    };
    size_t cap = 512 + strlen(t->host) + strlen(t->target);
    uint8_t *p = conn_reserve(c, cap);
    if (!p) {
        conn_fail(c, ERR_CONNECT, "out of memory");
        return;
    }
    int n = wsk_handshake_client_request((char *)p, cap, &req);
    if (n < 0) {
        conn_fail(c, ERR_CONNECT, "cannot write the upgrade request: %s", wsk_strerror(n));
        return;
    }
    c->out_len += (size_t)n;
    wsk_http_parser_init(&c->http, 0);
    int rv = wsk_io_start(w->loop, &c->io, WSK_IO_READ);
    if (rv < 0) {
        conn_fail(c, ERR_CONNECT, "cannot watch the socket: %s", wsk_strerror(rv));
        return;
    }
    (void)conn_flush(c);
}

static void conn_open(struct bconn *c)
{
    struct worker *w = c->w;
    struct bench *b = w->b;
    int one = 1, fd, rv;

    c->is_restart = false;
    c->has_failed = false;
    /* Freed here rather than when the connection ends: it may end inside a
     * callback of wsk_deflate_decompress(). */
    wsk_deflate_free(c->zctx);
    c->zctx = NULL;
    c->sent = c->received = 0;
    c->out_off = c->out_len = 0;
    const struct bench_target *t = target_of(c);
    fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conn_fail(c, ERR_CONNECT, "socket: %s", strerror(errno));
        return;
    }
    w->num_live++;
    wsk_io_init(&c->io, fd, on_io, c);
    c->state = CS_CONNECTING;
    c->started_ns = now_ns();
    c->deadline_ms = wsk_loop_now(w->loop) + OPEN_TIMEOUT_MS;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (t->is_loopback4)
        bind_source(fd, (uint32_t)b->opt.source_base, c->id);
    rv = connect(fd, (const struct sockaddr *)&t->addr, t->addr_len);
    if (rv < 0 && errno != EINPROGRESS) {
        conn_fail(c, ERR_CONNECT, "connect: %s", strerror(errno));
        return;
    }
    rv = wsk_io_start(w->loop, &c->io, WSK_IO_WRITE);
    if (rv < 0)
        conn_fail(c, ERR_CONNECT, "cannot watch the socket: %s", wsk_strerror(rv));
}

/* Keeps up to OPEN_CONCURRENCY handshakes going while the worker opens its
 * connections: a server's accept queue is finite, and a SYN flood would
 * measure retransmission timers. */
static void open_more(struct worker *w)
{
    if (w->is_in_open_more)
        return; /* a synchronous failure below called back here */
    w->is_in_open_more = true;
    while (w->phase == PH_OPENING && w->num_opening < OPEN_CONCURRENCY &&
           w->next_open < w->num_conns) {
        struct bconn *c = &w->conns[w->next_open++];
        c->is_opening = true;
        w->num_opening++;
        conn_open(c);
    }
    w->is_in_open_more = false;
}

/* ---- the run's work --------------------------------------------------------- */

static uint64_t echo_id48(const struct bconn *c, uint64_t seq)
{
    return (uint64_t)c->id << SEQ_BITS | (seq & ((UINT64_C(1) << SEQ_BITS) - 1));
}

static int zsink(void *ctx, const uint8_t *data, size_t len)
{
    return cli_buf_append(ctx, data, len);
}

/* The most bytes a message of size bytes takes as a frame: deflate may grow
 * what does not compress, by 5 bytes per stored block and a few more. */
static size_t frame_max(const struct bench *b)
{
    size_t size = (size_t)b->opt.size;
    return size + WSK_FRAME_HEADER_MAX + (b->opt.is_deflate ? size / 64 + 64 : 0);
}

/* The message as the application sends it, into w->plain, for --payload
 * chat and --deflate. */
static void plain_message(struct worker *w, uint64_t id48, uint64_t seq, uint64_t time_ns)
{
    const struct bench *b = w->b;
    size_t size = (size_t)b->opt.size;
    uint8_t hdr[HDR_LEN];

    make_header(hdr, id48, time_ns);
    memcpy(w->plain, hdr, size < HDR_LEN ? size : HDR_LEN);
    if (size <= HDR_LEN)
        return;
    if (b->opt.is_chat)
        bench_chat_body(w->plain + HDR_LEN, size - HDR_LEN, seq);
    else
        memcpy(w->plain + HDR_LEN, b->pattern + seq % PATTERN_PERIOD, size - HDR_LEN);
}

/* Encodes one masked data message into out (frame_max() bytes of room) and
 * returns its length, or 0 when compressing it ran out of memory. */
static size_t encode_message(struct bconn *c, uint8_t *out, uint64_t id48, uint64_t seq,
                             uint64_t time_ns)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;
    size_t size = (size_t)b->opt.size, k = size < HDR_LEN ? size : HDR_LEN;
    uint8_t key[4], hdr[HDR_LEN];
    size_t h;

    rng_bytes(w, key, sizeof key);
    if (w->plain) {
        plain_message(w, id48, seq, time_ns);
        if (!c->zctx) {
            h = wsk_frame_header_encode(out, b->first_byte, size, key);
            wsk_mask_copy(out + h, w->plain, size, key, 0);
            return h + size;
        }
        w->z.len = 0;
        if (wsk_deflate_compress(c->zctx, w->plain, size, zsink, &w->z) < 0)
            return 0;
        h = wsk_frame_header_encode(out, (uint8_t)(b->first_byte | WSK_FRAME_RSV1), w->z.len, key);
        wsk_mask_copy(out + h, (const uint8_t *)w->z.ptr, w->z.len, key, 0);
        return h + w->z.len;
    }
    make_header(hdr, id48, time_ns);
    h = wsk_frame_header_encode(out, b->first_byte, size, key);
    wsk_mask_copy(out + h, hdr, k, key, 0);
    if (size > HDR_LEN)
        wsk_mask_copy(out + h + HDR_LEN, b->pattern + seq % PATTERN_PERIOD, size - HDR_LEN, key,
                      HDR_LEN);
    return h + size;
}

static void starve(struct bconn *c)
{
    if (!c->is_starved) {
        c->is_starved = true;
        c->next_starved = c->w->starved;
        c->w->starved = c;
    }
}

/* Tops the connection's window up to IN_FLIGHT messages (fewer when --rate
 * has no tokens left), all in one buffer for one send(). */
static int echo_fill(struct bconn *c)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;
    uint64_t window = b->opt.in_flight, n = window - (c->sent - c->received);

    if (n == 0 || w->phase != PH_RUN || c->state != CS_OPEN)
        return 0;
    if (b->opt.rate) {
        uint64_t allowed = (uint64_t)w->tokens;
        if (allowed < n) {
            starve(c);
            n = allowed;
        }
        w->tokens -= (double)n;
        if (n == 0)
            return 0;
    }
    uint8_t *p = conn_reserve(c, (size_t)n * frame_max(b));
    if (!p) {
        conn_fail(c, ERR_PROTOCOL, "out of memory");
        return -1;
    }
    uint64_t t = rel_ns(b);
    for (uint64_t i = 0; i < n; i++) {
        size_t len = encode_message(c, p, echo_id48(c, c->sent), c->sent, t);
        if (!len) {
            conn_fail(c, ERR_PROTOCOL, "cannot compress a message: out of memory");
            return -1;
        }
        c->ring[c->sent % window] = t;
        p += len;
        c->sent++;
        w->outstanding++;
    }
    c->out_len = (size_t)(p - c->out);
    return 0;
}

static void fanout_send(struct worker *w, struct bconn *c)
{
    const struct bench *b = w->b;
    uint64_t now = now_ns();
    uint64_t due = (uint64_t)((double)(now - w->send_start_ns) * 1e-9 * (double)b->opt.rate) + 1;

    if (c->state != CS_OPEN || due <= w->st.sent)
        return;
    uint64_t n = due - w->st.sent;
    uint8_t *p = conn_reserve(c, (size_t)n * frame_max(b));
    if (!p) {
        conn_fail(c, ERR_PROTOCOL, "out of memory");
        return;
    }
    uint64_t t = now - b->epoch_ns;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = encode_message(c, p, w->st.sent, w->st.sent, t);
        if (!len) {
            conn_fail(c, ERR_PROTOCOL, "cannot compress a message: out of memory");
            return;
        }
        p += len;
        w->st.sent++;
    }
    c->out_len = (size_t)(p - c->out);
    (void)conn_flush(c);
}

static void on_send_timer(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct worker *w = t->data;
    const struct bench *b = w->b;

    (void)loop;
    if (w->phase != PH_RUN)
        return;
    if (b->opt.mode == MODE_FANOUT) {
        fanout_send(w, &w->conns[0]);
        return;
    }
    /* echo --rate: refill the bucket, then serve whoever waited for it. */
    uint64_t now = now_ns();
    w->tokens += w->rate * (double)(now - w->tokens_ns) * 1e-9;
    w->tokens_ns = now;
    double burst = w->rate / 100 + 1; /* at most 10 ms worth at once */
    if (w->tokens > burst)
        w->tokens = burst;
    struct bconn *list = w->starved;
    w->starved = NULL;
    while (list && w->tokens >= 1) {
        struct bconn *c = list;
        list = c->next_starved;
        c->is_starved = false;
        if (echo_fill(c) == 0 && c->state == CS_OPEN)
            (void)conn_flush(c);
    }
    while (list) { /* still no tokens: keep waiting */
        struct bconn *c = list;
        list = c->next_starved;
        c->is_starved = false;
        starve(c);
    }
}

/* ---- receiving ------------------------------------------------------------- */

static int msg_begin(struct bconn *c)
{
    const struct bench *b = c->w->b;

    c->msg_off = 0;
    if (c->role == ROLE_ECHO) {
        if (c->received == c->sent) {
            conn_fail(c, ERR_MISMATCH, "a message arrived with no echo outstanding");
            return -1;
        }
        c->msg_seq = c->received;
        make_header(c->mhdr, echo_id48(c, c->msg_seq), c->ring[c->msg_seq % b->opt.in_flight]);
        if (c->expect)
            bench_chat_body(c->expect, (size_t)b->opt.size - HDR_LEN, c->msg_seq);
    }
    return 0;
}

static int msg_bytes(struct bconn *c, const uint8_t *data, size_t len)
{
    const struct bench *b = c->w->b;

    if (c->role != ROLE_ECHO && c->role != ROLE_RECEIVER)
        return 0; /* idle and cycle connections ignore data (a chat may talk) */
    if (c->msg_off + len > b->opt.size) {
        conn_fail(c, ERR_MISMATCH, "message %llu is longer than the %llu bytes sent",
                  (unsigned long long)c->msg_seq, (unsigned long long)b->opt.size);
        return -1;
    }
    if (c->msg_off < HDR_LEN) {
        size_t k = HDR_LEN - (size_t)c->msg_off;
        if (k > len)
            k = len;
        if (c->role == ROLE_RECEIVER) {
            memcpy(c->mhdr + c->msg_off, data, k);
        } else if (memcmp(c->mhdr + c->msg_off, data, k)) {
            conn_fail(c, ERR_MISMATCH,
                      "echo %llu: sequence or send time is not the expected "
                      "'%.16s' (out of order, lost or corrupted)",
                      (unsigned long long)c->msg_seq, (const char *)c->mhdr);
            return -1;
        }
        c->msg_off += k;
        data += k;
        len -= k;
        if (c->role == ROLE_RECEIVER && c->msg_off == HDR_LEN) {
            uint64_t seq = decode48(c->mhdr), t = decode48(c->mhdr + 8);
            if (seq == UINT64_MAX || t == UINT64_MAX) {
                conn_fail(c, ERR_MISMATCH,
                          "a message that does not start with a sequence and "
                          "a send time: '%.16s'",
                          (const char *)c->mhdr);
                return -1;
            }
            c->msg_seq = seq;
            if (c->expect)
                bench_chat_body(c->expect, (size_t)b->opt.size - HDR_LEN, seq);
        }
    }
    if (len) {
        const uint8_t *want =
            c->expect ? c->expect + (c->msg_off - HDR_LEN)
                      : b->pattern + c->msg_seq % PATTERN_PERIOD + (c->msg_off - HDR_LEN);
        if (memcmp(want, data, len)) {
            size_t i = 0;
            while (want[i] == data[i])
                i++;
            conn_fail(c, ERR_MISMATCH, "message %llu differs from what was sent at byte %llu",
                      (unsigned long long)c->msg_seq, (unsigned long long)(c->msg_off + i));
            return -1;
        }
        c->msg_off += len;
    }
    return 0;
}

static int msg_end(struct bconn *c)
{
    struct worker *w = c->w;
    const struct bench *b = w->b;
    uint8_t want_opcode = b->opt.is_binary ? WSK_OP_BINARY : WSK_OP_TEXT;

    if (c->role != ROLE_ECHO && c->role != ROLE_RECEIVER)
        return 0;
    if (c->msg_off != b->opt.size) {
        conn_fail(c, ERR_MISMATCH, "message %llu has %llu bytes, %llu were sent",
                  (unsigned long long)c->msg_seq, (unsigned long long)c->msg_off,
                  (unsigned long long)b->opt.size);
        return -1;
    }
    if (c->msg_opcode != want_opcode) {
        conn_fail(c, ERR_MISMATCH, "message %llu came back as %s, it was sent as %s",
                  (unsigned long long)c->msg_seq, c->msg_opcode == WSK_OP_TEXT ? "text" : "binary",
                  want_opcode == WSK_OP_TEXT ? "text" : "binary");
        return -1;
    }
    if (c->role == ROLE_ECHO) {
        uint64_t sent_at = c->ring[c->msg_seq % b->opt.in_flight];
        c->received++;
        w->outstanding--;
        if (w->phase == PH_RUN) {
            w->st.messages++;
            w->st.bytes += b->opt.size;
            w->st.wire_bytes += c->wire_len;
        }
        /* Late echoes count for latency (they were sent while measuring),
         * not for throughput. */
        if (w->phase == PH_RUN || w->phase == PH_DRAIN)
            hist_record(&w->hist, w->rx_ns - sent_at);
        if (w->phase == PH_DRAIN) {
            w->last_progress_ms = wsk_loop_now(w->loop);
            if (w->outstanding == 0)
                schedule_check(w);
        }
        return 0;
    }
    /* A fanout receiver: TCP keeps order, so a jump is a loss and a step
     * back a duplicate. */
    if (c->msg_seq > c->received)
        c->missing += c->msg_seq - c->received;
    else if (c->msg_seq < c->received)
        c->duplicates++;
    if (c->msg_seq >= c->received)
        c->received = c->msg_seq + 1;
    if (w->phase == PH_RUN) {
        w->st.messages++;
        w->st.bytes += b->opt.size;
        w->st.wire_bytes += c->wire_len;
    }
    if (w->phase == PH_RUN || w->phase == PH_DRAIN)
        hist_record(&w->hist, (w->rx_ns - decode48(c->mhdr + 8)) & MASK48);
    if (w->phase == PH_DRAIN)
        w->last_progress_ms = wsk_loop_now(w->loop);
    return 0;
}

static int on_control(struct bconn *c, uint8_t opcode, uint16_t close_code)
{
    struct worker *w = c->w;

    switch (opcode) {
    case WSK_OP_PING:
        return conn_queue_control(c, WSK_OP_PONG, c->ctl, c->ctl_len);
    case WSK_OP_PONG: {
        uint8_t want[8];
        if (c->role != ROLE_IDLE || !c->is_pinged)
            return 0; /* unsolicited pongs are allowed */
        encode48(want, c->id);
        if (c->ctl_len != sizeof want || memcmp(c->ctl, want, sizeof want)) {
            conn_fail(c, ERR_MISMATCH, "the pong does not carry the ping's payload");
            return -1;
        }
        c->is_pinged = false;
        w->pings_pending--;
        w->st.answered++;
        w->last_progress_ms = wsk_loop_now(w->loop);
        if (w->pings_pending == 0)
            schedule_check(w);
        return 0;
    }
    case WSK_OP_CLOSE:
        if (c->state == CS_CLOSING) {
            c->state = CS_CLOSE_WAIT; /* the server's FIN comes next */
            return 0;
        }
        /* The server closes first. Answer as RFC 6455 asks, but during the
         * run it means the server gave up on a connection. */
        if (w->phase < PH_CLOSING) {
            record_error(w, ERR_PROTOCOL, "connection %u: the server closed it with %u",
                         (unsigned)c->id, (unsigned)close_code);
            c->has_failed = true;
        }
        {
            uint8_t payload[125];
            int len = wsk_close_payload_encode(
                payload, wsk_close_code_is_valid(close_code) ? close_code : 0, NULL, 0);
            if (conn_queue_control(c, WSK_OP_CLOSE, payload, len > 0 ? (size_t)len : 0) < 0)
                return -1;
        }
        c->state = CS_CLOSE_WAIT;
        if (!c->deadline_ms)
            c->deadline_ms = wsk_loop_now(w->loop) + CLOSE_TIMEOUT_MS;
        return 0;
    default:
        return 0;
    }
}

static int inflate_sink(void *ctx, const uint8_t *data, size_t len)
{
    return msg_bytes(ctx, data, len);
}

static int on_chunk(struct bconn *c, const struct wsk_frame_chunk *ch)
{
    if (ch->msg_opcode >= WSK_OP_CLOSE) {
        if (ch->is_frame_start)
            c->ctl_len = 0;
        memcpy(c->ctl + c->ctl_len, ch->data, ch->len); /* the parser allows 125 at most */
        c->ctl_len = (uint8_t)(c->ctl_len + ch->len);
        if (!ch->is_frame_end)
            return 0;
        return on_control(c, ch->opcode, ch->close_code);
    }
    if (ch->is_message_start) {
        c->msg_opcode = ch->msg_opcode;
        c->is_compressed = ch->is_compressed;
        c->wire_len = 0;
        if (msg_begin(c) < 0)
            return -1;
    }
    c->wire_len += ch->len;
    if (c->is_compressed) {
        if (ch->len || ch->is_message_end) {
            const struct bench *b = c->w->b;
            int rv = wsk_deflate_decompress(c->zctx, ch->data, ch->len, ch->is_message_end,
                                            b->opt.size, inflate_sink, c);
            if (rv < 0) {
                if (c->state == CS_OFF)
                    return -1; /* the sink failed the connection */
                if (rv == WSK_ETOOBIG)
                    conn_fail(c, ERR_MISMATCH, "message %llu is longer than the %llu bytes sent",
                              (unsigned long long)c->msg_seq, (unsigned long long)b->opt.size);
                else
                    conn_fail(c, ERR_PROTOCOL, "message %llu: %s", (unsigned long long)c->msg_seq,
                              wsk_strerror(rv));
                return -1;
            }
        }
    } else if (ch->len && msg_bytes(c, ch->data, ch->len) < 0) {
        return -1;
    }
    if (ch->is_message_end)
        return msg_end(c);
    return 0;
}

static int frames_input(struct bconn *c, uint8_t *buf, size_t len)
{
    while (len) {
        struct wsk_frame_chunk ch;
        bool has_chunk;
        int64_t n = wsk_frame_parse(&c->parser, buf, len, &ch, &has_chunk);
        if (n < 0) {
            conn_fail(c, ERR_PROTOCOL, "%s (close code %u)", wsk_strerror((int)n),
                      (unsigned)wsk_frame_parser_close_code(&c->parser));
            return -1;
        }
        buf += n;
        len -= (size_t)n;
        if (has_chunk && on_chunk(c, &ch) < 0)
            return -1;
        if (n == 0 && !has_chunk)
            break;
    }
    return 0;
}

/* --deflate: the server must have accepted our offer. Returns -1 when the
 * connection failed. */
static int accept_deflate(struct bconn *c)
{
    struct worker *w = c->w;
    struct wsk_deflate_params params;
    const struct wsk_slice *v =
        wsk_http_header_get(w->resp.headers, w->resp.num_headers, "Sec-WebSocket-Extensions");
    int rv = v ? wsk_deflate_accept(v, &w->b->zcfg, &params) : 0;

    if (rv == 0) {
        conn_fail(c, ERR_CONNECT, "the server did not accept permessage-deflate (--deflate)");
        return -1;
    }
    if (rv < 0) {
        conn_fail(c, ERR_CONNECT, "bad Sec-WebSocket-Extensions answer: %s", wsk_strerror(rv));
        return -1;
    }
    wsk_deflate_free(c->zctx);
    c->zctx = NULL;
    rv = wsk_deflate_new(&c->zctx, &params, WSK_ROLE_CLIENT);
    if (rv < 0) {
        conn_fail(c, ERR_CONNECT, "cannot set up permessage-deflate: %s", wsk_strerror(rv));
        return -1;
    }
    return 0;
}

static int handshake_input(struct bconn *c, uint8_t *buf, size_t len)
{
    struct worker *w = c->w;
    uint8_t *head = buf;
    int rv;

    if (c->head) {
        char *p = realloc(c->head, c->head_len + len);
        if (!p) {
            conn_fail(c, ERR_CONNECT, "out of memory");
            return -1;
        }
        memcpy(p + c->head_len, buf, len);
        c->head = p;
        c->head_len += len;
        head = (uint8_t *)p;
        len = c->head_len;
    }
    rv = wsk_http_response_parse(&c->http, (const char *)head, len, &w->resp);
    if (rv == 0) {
        if (!c->head) {
            c->head = malloc(len);
            if (!c->head) {
                conn_fail(c, ERR_CONNECT, "out of memory");
                return -1;
            }
            memcpy(c->head, buf, len);
            c->head_len = len;
        }
        return 0;
    }
    if (rv < 0) {
        conn_fail(c, ERR_CONNECT, "bad handshake response: %s", wsk_strerror(rv));
        return -1;
    }
    struct wsk_slice chosen;
    int vr = wsk_handshake_client_verify(&w->resp, c->key, NULL, 0, &chosen);
    if (vr == WSK_EHSTATUS) {
        conn_fail(c, ERR_CONNECT, "the server answered HTTP %d, not 101", w->resp.status);
        return -1;
    }
    if (vr < 0) {
        conn_fail(c, ERR_CONNECT, "handshake: %s", wsk_strerror(vr));
        return -1;
    }
    if (w->b->opt.is_deflate && accept_deflate(c) < 0)
        return -1;
    char *owned = c->head;
    c->head = NULL;
    c->head_len = 0;
    conn_established(c);
    /* Frames may follow the head in the same read. */
    int frv = 0;
    if ((size_t)rv < len && c->state != CS_OFF)
        frv = frames_input(c, head + rv, len - (size_t)rv);
    free(owned);
    return frv;
}

static int conn_input(struct bconn *c, uint8_t *buf, size_t len)
{
    if (c->state == CS_HANDSHAKE)
        return handshake_input(c, buf, len);
    return frames_input(c, buf, len);
}

static void conn_eof(struct bconn *c)
{
    struct worker *w = c->w;

    if (c->state == CS_CLOSE_WAIT || (c->state == CS_CLOSING && w->b->opt.mode == MODE_RAW_ECHO)) {
        conn_end(c, !c->has_failed);
        return;
    }
    conn_fail(c, c->state == CS_HANDSHAKE ? ERR_CONNECT : ERR_PROTOCOL,
              "the server closed the TCP connection %s",
              c->state == CS_HANDSHAKE ? "during the handshake" : "without a close handshake");
}

/* wss://: reads records until OpenSSL holds nothing more (with read-ahead it
 * may hold several records from one recv(), and no readiness event would
 * come for them). Returns -1 when the connection ended. */
static int conn_read_tls(struct bconn *c)
{
    struct worker *w = c->w;

    for (;;) {
        char err[160];
        ssize_t n = bench_tls_read(c->tls, w->rbuf, READ_CHUNK, err, sizeof err);
        if (n == BENCH_TLS_WANT_READ || n == BENCH_TLS_WANT_WRITE)
            return 0;
        if (n == BENCH_TLS_EOF) {
            conn_eof(c);
            return -1;
        }
        if (n < 0) {
            conn_fail(c, c->state == CS_HANDSHAKE ? ERR_CONNECT : ERR_PROTOCOL, "recv: %s", err);
            return -1;
        }
        w->rx_ns = rel_ns(w->b);
        if (conn_input(c, w->rbuf, (size_t)n) < 0 || c->state == CS_OFF)
            return -1;
        if (!bench_tls_has_pending(c->tls))
            return 0; /* the socket's readiness brings the rest */
    }
}

static void conn_read(struct bconn *c)
{
    struct worker *w = c->w;

    if (c->tls) {
        if (conn_read_tls(c) < 0)
            return;
        if (c->role == ROLE_ECHO && echo_fill(c) < 0)
            return;
        (void)conn_flush(c);
        return;
    }
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = recv(c->io.fd, w->rbuf, READ_CHUNK, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(c, c->state == CS_HANDSHAKE ? ERR_CONNECT : ERR_PROTOCOL, "recv: %s",
                      strerror(errno));
            return;
        }
        if (n == 0) {
            conn_eof(c);
            return;
        }
        w->rx_ns = rel_ns(w->b);
        if (conn_input(c, w->rbuf, (size_t)n) < 0 || c->state == CS_OFF)
            return;
        if ((size_t)n < READ_CHUNK)
            break;
    }
    /* What this burst freed of the window goes out with the pongs in one send. */
    if (c->role == ROLE_ECHO && echo_fill(c) < 0)
        return;
    (void)conn_flush(c);
}

static void on_io(struct wsk_loop *loop, struct wsk_io *io, unsigned events)
{
    struct bconn *c = io->data;

    (void)loop;
    if (c->state == CS_CONNECTING) {
        on_connected(c);
        return;
    }
    if (c->state == CS_TLS) {
        on_tls(c);
        return;
    }
    if ((events & WSK_IO_WRITE) && conn_flush(c) < 0)
        return;
    if (events & WSK_IO_READ)
        conn_read(c);
}

/* Closes the socket and does the bookkeeping of the connection's role. Every
 * way a connection ends comes through here. */
static void conn_end(struct bconn *c, bool is_clean)
{
    struct worker *w = c->w;

    if (c->role == ROLE_CYCLE && c->state >= CS_CONNECTING && c->state <= CS_HANDSHAKE)
        w->st.open_failed++;
    if (c->io.fd >= 0) {
        wsk_io_stop(w->loop, &c->io);
        bench_tls_free(c->tls, is_clean);
        c->tls = NULL;
        close(c->io.fd);
        c->io.fd = -1;
        w->num_live--;
    }
    c->state = CS_OFF;
    c->deadline_ms = 0;
    if (w->phase == PH_CLOSING)
        w->last_progress_ms = wsk_loop_now(w->loop);
    free(c->head);
    c->head = NULL;
    c->head_len = 0;
    if (c->is_opening) {
        c->is_opening = false;
        w->num_opening--;
        w->st.open_failed++;
        open_more(w);
    }
    if (c->role == ROLE_ECHO) {
        w->outstanding -= c->sent - c->received;
        c->received = c->sent;
    }
    if (c->role == ROLE_IDLE && c->is_pinged) {
        c->is_pinged = false;
        w->pings_pending--;
    }
    if (c->role == ROLE_CYCLE) {
        if (is_clean && w->phase == PH_RUN)
            w->st.cycles++;
        if (w->phase == PH_DRAIN)
            w->last_progress_ms = wsk_loop_now(w->loop);
        if (w->phase == PH_RUN) {
            /* After a failure, wait for the next tick: a refusing server
             * would otherwise be hammered in a tight loop. */
            if (is_clean)
                conn_open(c);
            else
                c->is_restart = true;
        } else {
            w->cycles_active--;
        }
    }
    schedule_check(w);
}

/* ---- phases ------------------------------------------------------------------ */

static void publish(struct worker *w)
{
    const struct worker_stats *st = &w->st;
    uint64_t errors = 0;

    for (int k = 0; k < ERR_KINDS; k++)
        errors += st->errors[k];
    atomic_store_explicit(&w->live.opened, st->opened, memory_order_relaxed);
    atomic_store_explicit(&w->live.open_failed, st->open_failed, memory_order_relaxed);
    atomic_store_explicit(&w->live.done, w->b->opt.mode == MODE_CONNECT ? st->cycles : st->messages,
                          memory_order_relaxed);
    atomic_store_explicit(&w->live.errors, errors, memory_order_relaxed);
    atomic_store_explicit(&w->live.sent, st->sent, memory_order_relaxed);
}

static void begin_closing(struct worker *w)
{
    /* A slow server closing 10,000 connections at once may need more than
     * CLOSE_TIMEOUT_MS: wait on while the closes keep coming. */
    w->phase = PH_CLOSING;
    w->phase_deadline_ms = wsk_loop_now(w->loop) + CLOSE_TIMEOUT_MS;
    w->phase_max_ms = wsk_loop_now(w->loop) + DRAIN_MAX_MS;
    w->last_progress_ms = wsk_loop_now(w->loop);
    wsk_timer_stop(w->loop, &w->send_timer);
    for (size_t i = 0; i < w->num_conns; i++) {
        struct bconn *c = &w->conns[i];
        if (c->state == CS_OPEN)
            conn_start_close(c);
        else if (c->state >= CS_CONNECTING && c->state <= CS_HANDSHAKE)
            conn_end(c, false);
    }
    schedule_check(w);
}

static bool is_drained(struct worker *w)
{
    struct bench *b = w->b;

    switch (b->opt.mode) {
    case MODE_ECHO:
    case MODE_RAW_ECHO:
        return w->outstanding == 0;
    case MODE_IDLE:
        return w->pings_pending == 0;
    case MODE_CONNECT:
        return w->cycles_active == 0;
    case MODE_FANOUT:
        if (!atomic_load_explicit(&b->is_fanout_sent_known, memory_order_acquire))
            return false;
        uint64_t sent = atomic_load_explicit(&b->fanout_sent, memory_order_relaxed);
        for (size_t i = 0; i < w->num_conns; i++) {
            const struct bconn *c = &w->conns[i];
            if (c->role == ROLE_RECEIVER && c->state == CS_OPEN && c->received < sent)
                return false;
        }
        return true;
    }
    return true;
}

/* What the drain did not get back becomes errors. */
static void drain_timed_out(struct worker *w)
{
    switch (w->b->opt.mode) {
    case MODE_ECHO:
    case MODE_RAW_ECHO:
        record_error(w, ERR_TIMEOUT, "%llu echoes did not come back (waited %u s after the stop)",
                     (unsigned long long)w->outstanding,
                     (unsigned)((wsk_loop_now(w->loop) + DRAIN_MAX_MS - w->phase_max_ms) / 1000));
        break;
    case MODE_IDLE:
        record_error(w, ERR_TIMEOUT, "%llu connections did not answer a ping (waited %u s)",
                     (unsigned long long)w->pings_pending,
                     (unsigned)((wsk_loop_now(w->loop) + DRAIN_MAX_MS - w->phase_max_ms) / 1000));
        break;
    case MODE_CONNECT:
        record_error(w, ERR_TIMEOUT, "%zu handshakes did not finish within %u s", w->cycles_active,
                     DRAIN_TIMEOUT_MS / 1000);
        break;
    case MODE_FANOUT:
        break; /* what did not arrive is counted as missing */
    }
}

static void finish(struct worker *w)
{
    struct bench *b = w->b;

    w->phase = PH_DONE;
    wsk_timer_stop(w->loop, &w->tick);
    wsk_timer_stop(w->loop, &w->send_timer);
    if (b->opt.mode == MODE_FANOUT) {
        uint64_t sent = atomic_load_explicit(&b->fanout_sent, memory_order_acquire);
        for (size_t i = 0; i < w->num_conns; i++) {
            struct bconn *c = &w->conns[i];
            if (c->role != ROLE_RECEIVER || !c->was_opened)
                continue;
            if (c->received < sent)
                c->missing += sent - c->received;
            w->st.missing += c->missing;
            w->st.duplicates += c->duplicates;
            w->st.receivers_with_loss += c->missing || c->duplicates;
        }
    }
    publish(w);
    atomic_fetch_add_explicit(&b->num_finished, 1, memory_order_release);
    wsk_loop_stop(w->loop);
}

static void on_check(struct wsk_loop *loop, struct wsk_defer *d)
{
    struct worker *w = d->data;

    (void)loop;
    switch (w->phase) {
    case PH_OPENING:
        open_more(w);
        if (w->next_open == w->num_conns && w->num_opening == 0) {
            w->phase = PH_READY;
            publish(w);
            atomic_fetch_add_explicit(&w->b->num_ready, 1, memory_order_release);
        }
        break;
    case PH_DRAIN:
        if (is_drained(w))
            begin_closing(w);
        break;
    case PH_CLOSING:
        if (w->num_live == 0)
            finish(w);
        break;
    default:
        break;
    }
}

static void on_tick(struct wsk_loop *loop, struct wsk_timer *t)
{
    struct worker *w = t->data;
    const struct bench *b = w->b;
    uint64_t now = wsk_loop_now(loop);

    if (w->phase == PH_OPENING || w->phase == PH_DRAIN || b->opt.mode == MODE_CONNECT) {
        for (size_t i = 0; i < w->num_conns; i++) {
            struct bconn *c = &w->conns[i];
            if (c->is_restart && w->phase == PH_RUN) {
                conn_open(c);
            } else if (c->deadline_ms && now >= c->deadline_ms) {
                conn_fail(c, c->state <= CS_HANDSHAKE ? ERR_CONNECT : ERR_TIMEOUT, "%s timed out",
                          c->state <= CS_HANDSHAKE ? "opening" : "the close handshake");
            } else if (c->is_restart && w->phase != PH_RUN) {
                c->is_restart = false;
                w->cycles_active--;
            }
        }
    }
    if (w->phase == PH_DRAIN) {
        if (is_drained(w)) {
            begin_closing(w);
        } else if (now >= w->phase_deadline_ms &&
                   (now >= w->last_progress_ms + DRAIN_QUIET_MS || now >= w->phase_max_ms)) {
            drain_timed_out(w);
            begin_closing(w);
        }
    } else if (w->phase == PH_CLOSING && now >= w->phase_deadline_ms &&
               (now >= w->last_progress_ms + DRAIN_QUIET_MS || now >= w->phase_max_ms)) {
        size_t stuck = 0;
        for (size_t i = 0; i < w->num_conns; i++) {
            struct bconn *c = &w->conns[i];
            if (c->state != CS_OFF) {
                stuck++;
                conn_end(c, false);
            }
        }
        if (stuck)
            record_error(w, ERR_TIMEOUT,
                         "%zu connections did not finish the close handshake (waited %u s)", stuck,
                         (unsigned)((now + DRAIN_MAX_MS - w->phase_max_ms) / 1000));
    }
    publish(w);
    schedule_check(w);
}

static void on_go(struct wsk_loop *loop, struct wsk_post *p)
{
    struct worker *w = p->data;
    const struct bench *b = w->b;

    if (w->phase != PH_READY)
        return;
    w->phase = PH_RUN;
    switch (b->opt.mode) {
    case MODE_ECHO:
    case MODE_RAW_ECHO:
        if (b->opt.rate) {
            w->rate = (double)b->opt.rate / (double)b->num_workers;
            w->tokens = w->rate / 100 + 1;
            w->tokens_ns = now_ns();
            (void)wsk_timer_start(loop, &w->send_timer, 1, 1);
        }
        for (size_t i = 0; i < w->num_conns; i++) {
            struct bconn *c = &w->conns[i];
            if (c->state == CS_OPEN && echo_fill(c) == 0)
                (void)conn_flush(c);
        }
        break;
    case MODE_CONNECT:
        for (size_t i = 0; i < w->num_conns; i++) {
            w->cycles_active++;
            conn_open(&w->conns[i]);
        }
        break;
    case MODE_FANOUT:
        if (w->index == 0 && w->conns[0].state == CS_OPEN) {
            uint64_t period = 1000 / b->opt.rate;
            period = period < 1 ? 1 : period > 10 ? 10 : period;
            w->send_start_ns = now_ns();
            fanout_send(w, &w->conns[0]);
            (void)wsk_timer_start(loop, &w->send_timer, period, period);
        }
        break;
    case MODE_IDLE:
        break;
    }
}

static void on_stop(struct wsk_loop *loop, struct wsk_post *p)
{
    struct worker *w = p->data;
    struct bench *b = w->b;

    if (w->phase == PH_OPENING || w->phase == PH_READY) {
        /* Interrupted before the start: close what is open and leave. */
        if (w->phase == PH_OPENING)
            w->next_open = w->num_conns;
        w->phase = PH_DRAIN;
        begin_closing(w);
        if (b->opt.mode == MODE_FANOUT && w->index == 0) {
            atomic_store_explicit(&b->fanout_sent, 0, memory_order_relaxed);
            atomic_store_explicit(&b->is_fanout_sent_known, true, memory_order_release);
        }
        return;
    }
    if (w->phase != PH_RUN)
        return;
    w->phase = PH_DRAIN;
    w->phase_deadline_ms = wsk_loop_now(loop) + DRAIN_TIMEOUT_MS;
    w->phase_max_ms = wsk_loop_now(loop) + DRAIN_MAX_MS;
    w->last_progress_ms = wsk_loop_now(loop);
    wsk_timer_stop(loop, &w->send_timer);
    switch (b->opt.mode) {
    case MODE_FANOUT:
        if (w->index == 0) {
            (void)conn_flush(&w->conns[0]);
            atomic_store_explicit(&b->fanout_sent, w->st.sent, memory_order_relaxed);
            atomic_store_explicit(&b->is_fanout_sent_known, true, memory_order_release);
        }
        break;
    case MODE_IDLE:
        /* Each connection must still answer: one ping each, all at once. */
        for (size_t i = 0; i < w->num_conns; i++) {
            struct bconn *c = &w->conns[i];
            uint8_t payload[8];
            if (c->state != CS_OPEN)
                continue;
            encode48(payload, c->id);
            if (conn_queue_control(c, WSK_OP_PING, payload, sizeof payload) < 0)
                continue;
            c->is_pinged = true;
            w->pings_pending++;
            (void)conn_flush(c);
        }
        break;
    default:
        break;
    }
    schedule_check(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int rv;

    (void)wsk_timer_start(w->loop, &w->tick, TICK_MS, TICK_MS);
    open_more(w);
    schedule_check(w);
    rv = wsk_loop_run(w->loop);
    if (rv < 0) {
        record_error(w, ERR_PROTOCOL, "event loop failed: %s", wsk_strerror(rv));
        publish(w);
        atomic_fetch_add_explicit(&w->b->num_finished, 1, memory_order_release);
        if (w->phase < PH_READY)
            atomic_fetch_add_explicit(&w->b->num_ready, 1, memory_order_release);
    }
    return NULL;
}

/* ---- setting up ------------------------------------------------------------ */

/* Each connection needs a descriptor: raise the soft limit to the hard one
 * when the run needs more than the soft limit. */
static int raise_fd_limit(const struct bench *b)
{
    struct rlimit rl;
    uint64_t need = b->num_conns + FD_MARGIN;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t old = rl.rlim_cur;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
            cli_error("%zu connections need about %llu open files, but the hard limit "
                      "(RLIMIT_NOFILE) is %llu: raise it (ulimit -Hn as root, or LimitNOFILE) or "
                      "use fewer connections",
                      b->num_conns, (unsigned long long)need, (unsigned long long)rl.rlim_max);
            return -1;
        }
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            cli_error("cannot raise the open-file limit from %llu to %llu: %s",
                      (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(errno));
            return -1;
        }
        if (!b->opt.is_json)
            cli_info("raised the open-file limit from %llu to %llu", (unsigned long long)old,
                     (unsigned long long)rl.rlim_max);
    }
    return 0;
}

static int setup(struct bench *b)
{
    const struct bench_options *opt = &b->opt;
    size_t total = (size_t)opt->connections + (opt->mode == MODE_FANOUT);
    int rv;

    b->num_conns = total;
    b->num_workers = (size_t)opt->threads;
    b->epoch_ns = now_ns();
    b->first_byte = (uint8_t)(WSK_FRAME_FIN | (opt->is_binary ? WSK_OP_BINARY : WSK_OP_TEXT));
    if (raise_fd_limit(b) < 0)
        return -1;
    for (size_t i = 0; i < opt->num_urls; i++) {
        char err[300];
        if (!b->targets[i].is_tls || b->tls_ctx)
            continue;
        /* Busy connections keep their buffers; idle ones and handshake
         * cycles, which may be tens of thousands, do not. */
        bool keep =
            (opt->mode == MODE_ECHO || opt->mode == MODE_FANOUT) && opt->connections <= 1000;
        b->tls_ctx = bench_tls_ctx_new(opt->ca_file, opt->is_insecure, keep, err, sizeof err);
        if (!b->tls_ctx) {
            cli_error("%s", err);
            return -1;
        }
    }
    if (opt->is_deflate) {
        int n;
        wsk_deflate_config_init(&b->zcfg);
        b->zcfg.enabled = true;
        b->zcfg.min_compress_size = 1; /* --deflate compresses every message */
        memcpy(b->ext_header, "Sec-WebSocket-Extensions: ", 26);
        n = wsk_deflate_offer(b->ext_header + 26, sizeof b->ext_header - 28, &b->zcfg);
        if (n <= 0) {
            cli_error("cannot write the permessage-deflate offer: %s", wsk_strerror(n));
            return -1;
        }
        memcpy(b->ext_header + 26 + n, "\r\n", 3);
    }
    b->pattern = make_pattern((size_t)opt->size);
    b->conns = calloc(total, sizeof *b->conns);
    b->workers = calloc(b->num_workers, sizeof *b->workers);
    if (!b->pattern || !b->conns || !b->workers) {
        cli_error("out of memory");
        return -1;
    }
    for (size_t k = 0; k < b->num_workers; k++) {
        struct worker *w = &b->workers[k];
        size_t first = total * k / b->num_workers, last = total * (k + 1) / b->num_workers;

        w->b = b;
        w->index = (unsigned)k;
        w->conns = b->conns + first;
        w->num_conns = last - first;
        w->rng_off = sizeof w->rng; /* fill on first use */
        w->rbuf = malloc(READ_CHUNK);
        if (opt->is_chat || opt->is_deflate)
            w->plain = malloc((size_t)opt->size);
        if (!w->rbuf || ((opt->is_chat || opt->is_deflate) && !w->plain)) {
            cli_error("out of memory");
            return -1;
        }
        rv = wsk_loop_new(&w->loop, NULL);
        if (rv < 0) {
            cli_error("cannot create an event loop: %s", wsk_strerror(rv));
            return -1;
        }
        wsk_timer_init(&w->tick, on_tick, w);
        wsk_timer_init(&w->send_timer, on_send_timer, w);
        wsk_defer_init(&w->check, on_check, w);
        w->go_post = (struct wsk_post){.cb = on_go, .data = w};
        w->stop_post = (struct wsk_post){.cb = on_stop, .data = w};
        for (size_t i = 0; i < w->num_conns; i++) {
            struct bconn *c = &w->conns[i];
            c->w = w;
            c->id = (uint32_t)(first + i);
            c->io.fd = -1;
            if (opt->is_chat && !(c->expect = malloc((size_t)opt->size - HDR_LEN + 1))) {
                cli_error("out of memory");
                return -1;
            }
            switch (opt->mode) {
            case MODE_ECHO:
            case MODE_RAW_ECHO:
                c->role = ROLE_ECHO;
                c->ring = malloc((size_t)opt->in_flight * sizeof *c->ring);
                if (!c->ring) {
                    cli_error("out of memory");
                    return -1;
                }
                break;
            case MODE_CONNECT:
                c->role = ROLE_CYCLE;
                break;
            case MODE_IDLE:
                c->role = ROLE_IDLE;
                break;
            case MODE_FANOUT:
                c->role = c->id == 0 ? ROLE_SENDER : ROLE_RECEIVER;
                break;
            }
        }
        if (opt->mode == MODE_CONNECT)
            w->next_open = w->num_conns; /* nothing to open before the start */
    }
    return 0;
}

static void teardown(struct bench *b)
{
    for (size_t k = 0; b->workers && k < b->num_workers; k++) {
        struct worker *w = &b->workers[k];
        wsk_loop_free(w->loop);
        free(w->rbuf);
        free(w->plain);
        cli_buf_reset(&w->z);
    }
    for (size_t i = 0; b->conns && i < b->num_conns; i++) {
        struct bconn *c = &b->conns[i];
        bench_tls_free(c->tls, false);
        if (c->io.fd >= 0)
            close(c->io.fd);
        free(c->out);
        free(c->head);
        free(c->ring);
        free(c->expect);
        wsk_deflate_free(c->zctx);
    }
    free(b->workers);
    free(b->conns);
    free(b->pattern);
    bench_tls_ctx_free(b->tls_ctx);
    for (size_t i = 0; i < MAX_URLS; i++) {
        free(b->targets[i].host);
        free(b->targets[i].target);
        free(b->targets[i].tls_name);
    }
}

/* ---- main thread: time, progress, result --------------------------------- */

struct totals {
    struct worker_stats st;
    uint64_t errors;
    struct hist hist;
};

static void sum_live(const struct bench *b, uint64_t *opened, uint64_t *failed, uint64_t *done,
                     uint64_t *errors, uint64_t *sent)
{
    *opened = *failed = *done = *errors = *sent = 0;
    for (size_t k = 0; k < b->num_workers; k++) {
        const struct worker_live *l = &b->workers[k].live;
        *opened += atomic_load_explicit(&l->opened, memory_order_relaxed);
        *failed += atomic_load_explicit(&l->open_failed, memory_order_relaxed);
        *done += atomic_load_explicit(&l->done, memory_order_relaxed);
        *errors += atomic_load_explicit(&l->errors, memory_order_relaxed);
        *sent += atomic_load_explicit(&l->sent, memory_order_relaxed);
    }
}

static void progress(const struct bench *b, const char *what, uint64_t now, bool *is_shown)
{
    uint64_t opened, failed, done, errors, sent;
    char line[200];
    int n;

    sum_live(b, &opened, &failed, &done, &errors, &sent);
    if (b->go_ns && !b->stop_ns) {
        double secs = (double)(now - b->go_ns) * 1e-9;
        double rate = secs > 0 ? (double)done / secs : 0;
        const char *unit = b->opt.mode == MODE_CONNECT  ? "handshakes/s"
                           : b->opt.mode == MODE_FANOUT ? "deliveries/s"
                           : b->opt.mode == MODE_IDLE   ? NULL
                                                        : "msg/s";
        if (unit)
            n = snprintf(line, sizeof line, "[%4.0fs] %.0f %s, %llu errors", secs, rate, unit,
                         (unsigned long long)errors);
        else
            n = snprintf(line, sizeof line, "[%4.0fs] %llu open, %llu errors", secs,
                         (unsigned long long)opened, (unsigned long long)errors);
        if (b->opt.mode == MODE_FANOUT && n > 0 && (size_t)n < sizeof line)
            n += snprintf(line + n, sizeof line - (size_t)n, ", %llu sent",
                          (unsigned long long)sent);
    } else {
        n = snprintf(line, sizeof line, "%s: %llu/%zu connections open, %llu failed", what,
                     (unsigned long long)opened, b->num_conns, (unsigned long long)failed);
    }
    if (n < 0)
        return;
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    *is_shown = true;
}

/* Waits until deadline (or until cond says so), printing progress once per
 * second on a terminal. Returns the signal that came, or 0. */
static int wait_phase(struct bench *b, const sigset_t *signals, uint64_t deadline,
                      bool (*cond)(const struct bench *), const char *what, bool show,
                      bool *is_shown)
{
    uint64_t next_progress = now_ns() + PROGRESS_NS;

    for (;;) {
        uint64_t now = now_ns();
        if ((cond && cond(b)) || (deadline && now >= deadline))
            return 0;
        if (show && now >= next_progress) {
            progress(b, what, now, is_shown);
            next_progress += PROGRESS_NS;
        }
        uint64_t wait = 100000000; /* 100 ms: conditions are polled */
        if (deadline && deadline - now < wait)
            wait = deadline - now;
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        int sig = sigtimedwait(signals, NULL, &ts);
        if (sig > 0)
            return sig;
    }
}

static bool all_ready(const struct bench *b)
{
    return atomic_load_explicit(&b->num_ready, memory_order_acquire) == b->num_workers;
}

static bool all_finished(const struct bench *b)
{
    return atomic_load_explicit(&b->num_finished, memory_order_acquire) == b->num_workers;
}

static void totals_sum(const struct bench *b, struct totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t k = 0; k < b->num_workers; k++) {
        const struct worker *w = &b->workers[k];
        const struct worker_stats *s = &w->st;
        t->st.opened += s->opened;
        t->st.open_failed += s->open_failed;
        t->st.messages += s->messages;
        t->st.bytes += s->bytes;
        t->st.wire_bytes += s->wire_bytes;
        t->st.cycles += s->cycles;
        t->st.answered += s->answered;
        t->st.sent += s->sent;
        t->st.missing += s->missing;
        t->st.duplicates += s->duplicates;
        t->st.receivers_with_loss += s->receivers_with_loss;
        for (int e = 0; e < ERR_KINDS; e++) {
            t->st.errors[e] += s->errors[e];
            t->errors += s->errors[e];
        }
        hist_merge(&t->hist, &w->hist);
    }
}

static const char *first_error(const struct bench *b, int kind)
{
    for (size_t k = 0; k < b->num_workers; k++)
        if (b->workers[k].st.errors[kind])
            return b->workers[k].first_error[kind];
    return NULL;
}

static void format_ns(char *out, size_t cap, uint64_t ns)
{
    if (ns < 1000000)
        snprintf(out, cap, "%.0f us", (double)ns / 1e3);
    else if (ns < 10000000)
        snprintf(out, cap, "%.2f ms", (double)ns / 1e6);
    else if (ns < 1000000000)
        snprintf(out, cap, "%.1f ms", (double)ns / 1e6);
    else
        snprintf(out, cap, "%.2f s", (double)ns / 1e9);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* Why the run failed, in a few words, or NULL when it passed. */
static const char *failure(const struct bench *b, const struct totals *t, bool is_interrupted,
                           char *buf, size_t cap)
{
    const struct bench_options *opt = &b->opt;

    if (is_interrupted)
        return "interrupted";
    for (int k = 0; k < ERR_KINDS; k++)
        if (t->st.errors[k])
            return first_error(b, k);
    if (opt->mode != MODE_CONNECT && t->st.opened < b->num_conns) {
        snprintf(buf, cap, "%llu of %zu connections did not open",
                 (unsigned long long)(b->num_conns - t->st.opened), b->num_conns);
        return buf;
    }
    switch (opt->mode) {
    case MODE_IDLE:
        if (t->st.answered < b->num_conns) {
            snprintf(buf, cap, "%llu connections did not answer their ping",
                     (unsigned long long)(b->num_conns - t->st.answered));
            return buf;
        }
        return NULL;
    case MODE_FANOUT:
        if (t->st.missing || t->st.duplicates) {
            snprintf(buf, cap, "%llu deliveries missing, %llu duplicated, on %llu receivers",
                     (unsigned long long)t->st.missing, (unsigned long long)t->st.duplicates,
                     (unsigned long long)t->st.receivers_with_loss);
            return buf;
        }
        return t->st.sent ? NULL : "nothing was sent";
    case MODE_CONNECT:
        return t->st.cycles ? NULL : "no handshake completed";
    default:
        return t->st.messages ? NULL : "no message came back";
    }
}

static void report_json(const struct bench *b, const struct totals *t, double secs,
                        bool is_interrupted)
{
    const struct bench_options *opt = &b->opt;
    const struct hist *h = &t->hist;
    double done = opt->mode == MODE_CONNECT ? (double)t->st.cycles : (double)t->st.messages;

    printf("{\"mode\":\"%s\",\"url\":", mode_names[opt->mode]);
    json_string(opt->url);
    if (opt->num_urls > 1) {
        printf(",\"urls\":[");
        for (size_t i = 0; i < opt->num_urls; i++) {
            printf(i ? "," : "");
            json_string(opt->urls[i]);
        }
        printf("]");
    }
    printf(",\"connections\":%llu,\"size\":%llu,\"in_flight\":%llu,\"binary\":%s,"
           "\"threads\":%zu,\"rate\":%llu,\"duration_s\":%.3f,\"interrupted\":%s,"
           "\"opened\":%llu,\"open_failed\":%llu",
           (unsigned long long)opt->connections, (unsigned long long)opt->size,
           (unsigned long long)opt->in_flight, opt->is_binary ? "true" : "false", b->num_workers,
           (unsigned long long)opt->rate, secs, is_interrupted ? "true" : "false",
           (unsigned long long)t->st.opened, (unsigned long long)t->st.open_failed);
    printf(",\"tls\":%s,\"payload\":\"%s\",\"deflate\":%s", b->tls_ctx ? "true" : "false",
           opt->is_chat ? "chat" : "pattern", opt->is_deflate ? "true" : "false");
    if (opt->is_deflate && (opt->mode == MODE_ECHO || opt->mode == MODE_FANOUT))
        printf(",\"wire_bytes\":%llu", (unsigned long long)t->st.wire_bytes);
    switch (opt->mode) {
    case MODE_CONNECT:
        printf(",\"handshakes\":%llu,\"handshakes_per_s\":%.1f", (unsigned long long)t->st.cycles,
               secs > 0 ? done / secs : 0);
        break;
    case MODE_IDLE:
        printf(",\"answered\":%llu", (unsigned long long)t->st.answered);
        break;
    case MODE_FANOUT:
        printf(",\"sent\":%llu,\"deliveries\":%llu,\"deliveries_per_s\":%.1f,\"missing\":%llu,"
               "\"duplicates\":%llu,\"receivers_with_loss\":%llu",
               (unsigned long long)t->st.sent, (unsigned long long)t->st.messages,
               secs > 0 ? done / secs : 0, (unsigned long long)t->st.missing,
               (unsigned long long)t->st.duplicates, (unsigned long long)t->st.receivers_with_loss);
        break;
    default:
        printf(",\"messages\":%llu,\"msg_per_s\":%.1f,\"mb_per_s\":%.3f",
               (unsigned long long)t->st.messages, secs > 0 ? done / secs : 0,
               secs > 0 ? (double)t->st.bytes / secs / 1e6 : 0);
        break;
    }
    if (opt->mode != MODE_IDLE)
        printf(",\"latency_us\":{\"count\":%llu,\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,"
               "\"max\":%.1f}",
               (unsigned long long)h->count, (double)hist_percentile(h, 50) / 1e3,
               (double)hist_percentile(h, 90) / 1e3, (double)hist_percentile(h, 99) / 1e3,
               (double)h->max / 1e3);
    printf(",\"errors\":{\"total\":%llu", (unsigned long long)t->errors);
    for (int k = 0; k < ERR_KINDS; k++)
        printf(",\"%s\":%llu", err_names[k], (unsigned long long)t->st.errors[k]);
    printf("},\"first_error\":");
    const char *fe = NULL;
    for (int k = 0; k < ERR_KINDS && !fe; k++)
        fe = first_error(b, k);
    if (fe)
        json_string(fe);
    else
        fputs("null", stdout);
    char buf[160];
    const char *why = failure(b, t, is_interrupted, buf, sizeof buf);
    printf(",\"reason\":");
    if (why)
        json_string(why);
    else
        fputs("null", stdout);
    printf(",\"ok\":%s}\n", why ? "false" : "true");
}

static void report_text(const struct bench *b, const struct totals *t, double secs,
                        bool is_interrupted)
{
    const struct bench_options *opt = &b->opt;
    const struct hist *h = &t->hist;
    char p50[32], p90[32], p99[32], max[32], size[32];

    if (opt->size % (1024 * 1024) == 0)
        snprintf(size, sizeof size, "%llu MiB", (unsigned long long)(opt->size >> 20));
    else if (opt->size % 1024 == 0)
        snprintf(size, sizeof size, "%llu KiB", (unsigned long long)(opt->size >> 10));
    else
        snprintf(size, sizeof size, "%llu B", (unsigned long long)opt->size);
    printf("wsk bench %s", mode_names[opt->mode]);
    for (size_t i = 0; i < opt->num_urls; i++)
        printf(" %s", opt->urls[i]);
    printf("\n");
    switch (opt->mode) {
    case MODE_ECHO:
    case MODE_RAW_ECHO:
        printf("  %llu connections, %s %s messages, %llu in flight each, %zu thread%s, %.2f s%s\n",
               (unsigned long long)opt->connections, size, opt->is_binary ? "binary" : "text",
               (unsigned long long)opt->in_flight, b->num_workers, b->num_workers > 1 ? "s" : "",
               secs, is_interrupted ? " (interrupted)" : "");
        printf("  messages     %llu echoed: %.0f msg/s, %.2f MB/s each way\n",
               (unsigned long long)t->st.messages, secs > 0 ? (double)t->st.messages / secs : 0,
               secs > 0 ? (double)t->st.bytes / secs / 1e6 : 0);
        break;
    case MODE_CONNECT:
        printf("  %llu concurrent, %zu thread%s, %.2f s%s\n", (unsigned long long)opt->connections,
               b->num_workers, b->num_workers > 1 ? "s" : "", secs,
               is_interrupted ? " (interrupted)" : "");
        printf("  handshakes   %llu (connect, upgrade, close): %.0f/s\n",
               (unsigned long long)t->st.cycles, secs > 0 ? (double)t->st.cycles / secs : 0);
        break;
    case MODE_IDLE:
        printf("  %llu connections held %.2f s, %zu thread%s%s\n",
               (unsigned long long)opt->connections, secs, b->num_workers,
               b->num_workers > 1 ? "s" : "", is_interrupted ? " (interrupted)" : "");
        printf("  answered     %llu of %llu pinged at the end\n",
               (unsigned long long)t->st.answered, (unsigned long long)t->st.opened);
        break;
    case MODE_FANOUT:
        printf("  %llu receivers, 1 sender at %llu msg/s, %s %s messages, %zu thread%s, %.2f s%s\n",
               (unsigned long long)opt->connections, (unsigned long long)opt->rate, size,
               opt->is_binary ? "binary" : "text", b->num_workers, b->num_workers > 1 ? "s" : "",
               secs, is_interrupted ? " (interrupted)" : "");
        printf(
            "  deliveries   %llu while measuring: %.0f/s (%llu messages sent to each receiver)\n",
            (unsigned long long)t->st.messages, secs > 0 ? (double)t->st.messages / secs : 0,
            (unsigned long long)t->st.sent);
        printf("  missing      %llu (never delivered), duplicated %llu, receivers affected %llu\n",
               (unsigned long long)t->st.missing, (unsigned long long)t->st.duplicates,
               (unsigned long long)t->st.receivers_with_loss);
        break;
    }
    if (opt->mode != MODE_IDLE) {
        format_ns(p50, sizeof p50, hist_percentile(h, 50));
        format_ns(p90, sizeof p90, hist_percentile(h, 90));
        format_ns(p99, sizeof p99, hist_percentile(h, 99));
        format_ns(max, sizeof max, h->max);
        printf("  latency      p50 %s, p90 %s, p99 %s, max %s%s\n", p50, p90, p99, max,
               opt->mode == MODE_CONNECT ? " (connect to 101)" : "");
    }
    if (opt->is_deflate && (opt->mode == MODE_ECHO || opt->mode == MODE_FANOUT))
        printf("  deflate      %.1f%% of the payload bytes on the wire (server to client, %s)\n",
               t->st.bytes ? 100.0 * (double)t->st.wire_bytes / (double)t->st.bytes : 0.0,
               opt->is_chat ? "chat messages" : "the repeating pattern");
    printf("  connections  %llu opened, %llu failed\n", (unsigned long long)t->st.opened,
           (unsigned long long)t->st.open_failed);
    printf("  errors       %llu", (unsigned long long)t->errors);
    if (t->errors) {
        const char *sep = " (";
        for (int k = 0; k < ERR_KINDS; k++) {
            if (t->st.errors[k]) {
                printf("%s%s %llu", sep, err_names[k], (unsigned long long)t->st.errors[k]);
                sep = ", ";
            }
        }
        putchar(')');
    }
    putchar('\n');
    for (int k = 0; k < ERR_KINDS; k++) {
        const char *fe = first_error(b, k);
        if (fe)
            printf("    first %s error: %s\n", err_names[k], fe);
    }
    char buf[160];
    const char *why = failure(b, t, is_interrupted, buf, sizeof buf);
    if (why)
        printf("  result       FAILED: %s\n", why);
    else
        printf("  result       ok\n");
}

static int run(struct bench *b)
{
    const struct bench_options *opt = &b->opt;
    sigset_t signals;
    bool show = opt->verbosity > CLI_QUIET && isatty(STDERR_FILENO), is_shown = false;
    bool is_interrupted = false;
    int sig, rv;

    /* Workers inherit the mask: only this thread takes SIGINT and SIGTERM. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);

    for (size_t k = 0; k < b->num_workers; k++) {
        rv = pthread_create(&b->workers[k].thread, NULL, worker_main, &b->workers[k]);
        if (rv != 0) {
            cli_error("cannot start a thread: %s", strerror(rv));
            /* Those started stop at once: nothing was opened for long. */
            for (size_t j = 0; j < k; j++)
                wsk_loop_post(b->workers[j].loop, &b->workers[j].stop_post);
            for (size_t j = 0; j < k; j++)
                pthread_join(b->workers[j].thread, NULL);
            return CLI_EXIT_FAILURE;
        }
        b->workers[k].has_thread = true;
    }

    sig = wait_phase(b, &signals, 0, all_ready, "opening", show, &is_shown);
    if (sig == 0) {
        b->go_ns = now_ns();
        for (size_t k = 0; k < b->num_workers; k++)
            wsk_loop_post(b->workers[k].loop, &b->workers[k].go_post);
        sig = wait_phase(b, &signals, b->go_ns + (uint64_t)opt->duration_ms * 1000000u, NULL,
                         "running", show, &is_shown);
    }
    is_interrupted = sig != 0;
    b->stop_ns = now_ns();
    if (!b->go_ns)
        b->go_ns = b->stop_ns;
    for (size_t k = 0; k < b->num_workers; k++)
        wsk_loop_post(b->workers[k].loop, &b->workers[k].stop_post);
    if (show && is_shown) {
        fprintf(stderr, "\r%s\033[K", is_interrupted ? "interrupted: closing" : "closing");
        fflush(stderr);
    }
    while (wait_phase(b, &signals, 0, all_finished, "closing", false, &is_shown) != 0) {
        /* A second signal: the user does not want to wait for the closes. */
        if (show && is_shown)
            fputs("\r\033[K", stderr);
        fputs("wsk bench: interrupted twice, exiting without the result\n", stderr);
        _exit(128 + SIGINT);
    }
    for (size_t k = 0; k < b->num_workers; k++) {
        pthread_join(b->workers[k].thread, NULL);
        b->workers[k].has_thread = false;
    }
    if (show && is_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }

    struct totals *t = malloc(sizeof *t);
    if (!t) {
        cli_error("out of memory");
        return CLI_EXIT_FAILURE;
    }
    totals_sum(b, t);
    double secs = (double)(b->stop_ns - b->go_ns) * 1e-9;
    if (opt->is_json)
        report_json(b, t, secs, is_interrupted);
    else
        report_text(b, t, secs, is_interrupted);
    fflush(stdout);
    char buf[160];
    rv = failure(b, t, is_interrupted, buf, sizeof buf) ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
    free(t);
    return rv;
}

int cli_bench(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof *b);
    int status;

    if (!b) {
        fputs("wsk bench: out of memory\n", stderr);
        return CLI_EXIT_FAILURE;
    }
    cli_log_init("wsk bench", CLI_NORMAL);
    status = parse_options(&b->opt, argc, argv);
    if (status == 0) {
        cli_log_init("wsk bench", b->opt.verbosity);
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < b->opt.num_urls && status == 0; i++)
            if (parse_url(b->opt.urls[i], b->opt.mode, &b->targets[i]) < 0)
                status = CLI_EXIT_FAILURE;
        if (status != 0 || setup(b) < 0)
            status = CLI_EXIT_FAILURE;
        else
            status = run(b);
    }
    teardown(b);
    free(b);
    return status < 0 ? CLI_EXIT_OK : status;
}
