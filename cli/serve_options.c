/* wsk serve: the options, their help and their checks. */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "serve.h"

#define DEFAULT_HOST              "127.0.0.1"
#define DEFAULT_MAX_MESSAGE       (16u * 1024 * 1024)
#define DEFAULT_MAX_QUEUE         (1024u * 1024)
#define DEFAULT_MAX_CONNECTIONS   100000u
#define DEFAULT_PING_INTERVAL_MS  20000u
#define DEFAULT_HANDSHAKE_TIMEOUT 10000u
#define DEFAULT_UDP_PEER_TIMEOUT  60000u
#define DEFAULT_MAX_PROCS         256u
#define DEFAULT_EXEC_GRACE_MS     2000u
#define DEFAULT_REDIS_MAX_QUEUE   (16u * 1024 * 1024)
#define MAX_THREADS               256u

static const char serve_usage[] =
    "usage: wsk serve [options]\n"
    "\n"
    "Runs a WebSocket server. With no options it listens on 127.0.0.1:8080, relays\n"
    "every message to every client in the sender's room (the URL's path:\n"
    "ws://127.0.0.1:8080/team/a; / is the lobby) and serves a chat page at\n"
    "http://127.0.0.1:8080/: open it in two browser tabs. Raw TCP and UDP\n"
    "listeners can join the lobby (--listen tcp://... --listen udp://...).\n"
    "\n"
    "options:\n"
    "  --listen [SCHEME://]HOST:PORT\n"
    "                         where to listen (default 127.0.0.1:8080); repeat for\n"
    "                         up to 8 listeners. SCHEME: ws (the default: HTTP and\n"
    "                         WebSocket), tcp (raw TCP, lines) or udp (datagrams).\n"
    "                         HOST may be a name, an IPv4 address or an IPv6\n"
    "                         address in brackets ([::1]:8080); 0.0.0.0 or [::]\n"
    "                         listens on every interface. Port 0 picks a free\n"
    "                         port. A bare PORT means 127.0.0.1:PORT. A name is\n"
    "                         looked up at start; the first of its addresses\n"
    "                         that can be bound is used, IPv4 first\n"
    "  --broadcast            rooms (the default): a WebSocket message goes to\n"
    "                         every client of the sender's room, the sender\n"
    "                         included. The room is the path the client asked\n"
    "                         for, as sent (ws://HOST/team/a: /team/a), without\n"
    "                         the query; / is the lobby. TCP and UDP peers are in\n"
    "                         the lobby: a line (up to a newline) or a datagram\n"
    "                         goes to everyone else there, as a WebSocket text\n"
    "                         message (binary when not UTF-8), and the lobby's\n"
    "                         messages reach them as lines and datagrams\n"
    "  --echo                 send each message back to its sender only (TCP: the\n"
    "                         bytes as they come; UDP: each datagram)\n"
    "  --exec COMMAND         run COMMAND (with /bin/sh -c) for each connection:\n"
    "                         each line it prints is a text message, each message\n"
    "                         received a line on its stdin. Its exit closes the\n"
    "                         connection (1000; 1011 if it failed); the close\n"
    "                         gives it EOF, then SIGTERM and SIGKILL. It gets\n"
    "                         REMOTE_ADDR, REMOTE_PORT, PATH_INFO, QUERY_STRING,\n"
    "                         REQUEST_URI and HTTP_* headers, as CGI; its stderr\n"
    "                         is the server's\n"
    "  --binary               --exec: bytes both ways, each read a binary message\n"
    "  --proxy tcp://HOST:PORT\n"
    "                         connect each client to this TCP server and copy bytes\n"
    "                         both ways, as binary messages toward the client\n"
    "                         (websockify, for noVNC); back-pressure both ways.\n"
    "                         tcp:// listeners relay plain TCP to it\n"
    "  --max-procs N          --exec: most programs at once; more connections are\n"
    "                         closed with 1013 (default 256)\n"
    "  --exec-grace SECONDS   --exec: from the close to SIGTERM, and from SIGTERM\n"
    "                         to SIGKILL (default 2)\n"
    "  --static DIR           serve the files in DIR over HTTP instead of the\n"
    "                         built-in chat page, with ETag (304) and byte ranges\n"
    "                         (206) (default: the chat page at /)\n"
    "  --list-dirs            --static: list directories without index.html\n"
    "                         (default: 404)\n"
    "  --path PATH            accept WebSocket upgrades only on PATH, e.g. /ws\n"
    "                         (default: any path)\n"
    "  --origin ORIGIN        accept upgrades only from pages of ORIGIN, e.g.\n"
    "                         https://example.com; repeat for more; other origins\n"
    "                         get HTTP 403 (default: any origin)\n"
    "  --subprotocol P        offer subprotocol P; repeat for more, in order of\n"
    "                         preference (default: none)\n";

/* C17 compilers need not accept a literal over 4095 characters: the help
 * comes in four. */
static const char serve_usage_more[] =
    "  --auth-token TOKEN     only clients that present TOKEN may connect, as\n"
    "                         'Authorization: Bearer TOKEN' or ?token=TOKEN in the\n"
    "                         URL (the chat page passes its own ?token= on);\n"
    "                         others get HTTP 401, logged\n"
    "  --rate-limit N/s       --broadcast, --echo: at most N messages a second per\n"
    "                         connection, in bursts of up to N; a client that\n"
    "                         sends more is closed with 1008, logged and counted\n"
    "  --publish-token TOKEN  --broadcast: POST /publish/ROOM sends its body (up to\n"
    "                         --max-message) to the clients of /ROOM and answers\n"
    "                         200 with their number; with this option it needs\n"
    "                         'Authorization: Bearer TOKEN', from everyone, as\n"
    "                         behind a proxy every request comes from loopback\n"
    "                         (default: no token, loopback clients only; others\n"
    "                         get 403)\n"
    "  --redis redis://[:PASSWORD@]HOST[:PORT][/DB]\n"
    "                         --broadcast: join every wsk serve pointed at this\n"
    "                         Redis into one cluster: a message in a room reaches\n"
    "                         the room's clients on every process, once each\n"
    "                         (AUTH and SELECT from the URL; port 6379 by\n"
    "                         default). When Redis is down, messages stay on this\n"
    "                         process, counted; it is retried until it is back\n"
    "  --redis-max-queue BYTES\n"
    "                         most bytes waiting to go to Redis; past it messages\n"
    "                         stay on this process, counted (default 16M)\n"
    "  --threads N|auto       run N event loops in N threads (auto: one per CPU\n"
    "                         this process may use). They share the ports\n"
    "                         (SO_REUSEPORT: the kernel spreads new connections)\n"
    "                         and the rooms: a message reaches the room's clients\n"
    "                         on every thread, once each; --max-connections is\n"
    "                         shared out. Not with --exec, whose programs use the\n"
    "                         other cores (default 1: one core, and every\n"
    "                         message in one order)\n"
    "  --metrics [HOST:]PORT  serve Prometheus metrics at http://HOST:PORT/metrics\n"
    "                         (HOST 127.0.0.1 unless given): connections,\n"
    "                         messages and bytes, HTTP errors by status, queues,\n"
    "                         slow consumers, per thread (default: off). Every\n"
    "                         WebSocket listener answers GET /healthz: 200, or\n"
    "                         503 once shutting down\n";

static const char serve_usage_limits[] =
    "  --backend NAME         event loop: epoll, poll, select or io_uring (default epoll)\n"
    "  --reuse-port           share the port with other wsk serve --reuse-port\n"
    "                         processes (SO_REUSEPORT); each has its own clients\n"
    "  --max-message BYTES    largest message accepted; bigger ones close the\n"
    "                         connection with 1009 (default 16M); also the longest\n"
    "                         TCP line (longer closes the connection) and UDP\n"
    "                         datagram (longer is dropped)\n"
    "  --max-queue BYTES      send queue cap per connection (default 1M): past it a\n"
    "                         broadcast receiver is closed with 1008, and an echo\n"
    "                         client is not read from until it reads its echoes\n"
    "  --max-connections N    most connections open at once; more get HTTP 503\n"
    "                         (default 100000)\n"
    "  --ping-interval SECONDS\n"
    "                         ping each client this often; one that sends no pong\n"
    "                         within the same time (at most 20 s) is closed with\n"
    "                         1011 (default 20; 0 disables pings)\n"
    "  --handshake-timeout SECONDS\n"
    "                         time a client has to finish the opening handshake\n"
    "                         (default 10)\n"
    "  --idle-timeout SECONDS close a TCP connection that sends and receives\n"
    "                         nothing for this long (default 0: never)\n"
    "  --udp-peer-timeout SECONDS\n"
    "                         in broadcast mode a UDP peer gets the room's\n"
    "                         messages until it has been silent this long\n"
    "                         (default 60); at most --max-connections peers\n"
    "  --tls-cert FILE        serve https:// and wss:// (only) with the certificate\n"
    "                         chain in FILE (PEM, server certificate first); needs\n"
    "                         --tls-key. SIGHUP reloads both files; open\n"
    "                         connections keep the old certificate\n"
    "  --tls-key FILE         the certificate's private key (PEM, unencrypted)\n"
    "  --deflate              compress with permessage-deflate when clients offer it\n"
    "                         (default: chat text shrinks several-fold for ~50 KB\n"
    "                         per connection)\n"
    "  --no-deflate           never compress\n"
    "  --deflate-window BITS  compression window for both directions, 9..15\n"
    "                         (default 12; 15 costs ~190 KB per connection and\n"
    "                         compresses large messages better)\n"
    "  --deflate-shared       no context takeover either way: every message is\n"
    "                         compressed on its own, with a compressor the\n"
    "                         thread's connections share: no compression memory\n"
    "                         per connection, for many idle ones, but short\n"
    "                         messages shrink less (a chat line: ~70% of its\n"
    "                         size instead of ~40%)\n"
    "  -v, --verbose          log each connection opening and closing on stderr\n"
    "                         (peer, path, close code), and every answer to an\n"
    "                         HTTP request or upgrade as an access-log line:\n"
    "                         TIME PEER \"METHOD PATH\" STATUS BYTES, and\n"
    "                         \"REASON\" for a refusal; twice: library debug too\n"
    "  --log-format text|json stderr lines as text (default) or one JSON object\n"
    "                         each: time, prog, thread, level, msg (access lines:\n"
    "                         type, peer, method, path, status, bytes, reason)\n"
    "  -q, --quiet            print only errors (the listening line still goes to\n"
    "                         stdout: scripts read the port from it)\n"
    "  -h, --help             show this help\n";

static const char serve_usage_notes[] =
    "\n"
    "BYTES take an optional k or m suffix (1024-based): 64k, 16M. SECONDS may have a\n"
    "fraction: 0.5.\n"
    "\n"
    "stdout has one line per listener, in order, with the port actually bound:\n"
    "wsk serve: listening on http://HOST:PORT/ (WebSocket ws://HOST:PORT/PATH, MODE)\n"
    "(https:// and wss:// with --tls-cert), or\n"
    "wsk serve: listening on tcp://HOST:PORT (MODE)     (udp:// likewise)\n"
    "\n"
    "examples:\n"
    "  wsk serve --listen 8080 --listen tcp://127.0.0.1:9000\n"
    "      the chat page and a TCP chat in one room: nc 127.0.0.1 9000\n"
    "  curl -d 'build done' http://127.0.0.1:8080/publish/team/a\n"
    "      a backend's message to the chat room team/a (/?room=team/a on the page)\n"
    "  wsk serve --echo --listen udp://0:7 --listen tcp://0:7\n"
    "      the RFC 862 echo service on TCP and UDP\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM closes every connection with 1001 (TCP ones after\n"
    "their queued bytes are written) and exits 0; a\n"
    "second one exits at once. SIGHUP reloads the TLS certificate and key and logs\n"
    "the outcome; if they cannot be used, the error is logged and the old ones stay\n"
    "in use. Without TLS there is nothing to reload: SIGHUP is logged and ignored.\n"
    "Either way open connections are not disturbed.\n";

enum {
    OPT_LISTEN = 256,
    OPT_ECHO,
    OPT_BROADCAST,
    OPT_STATIC,
    OPT_LIST_DIRS,
    OPT_PATH,
    OPT_BACKEND,
    OPT_MAX_MESSAGE,
    OPT_MAX_QUEUE,
    OPT_MAX_CONNECTIONS,
    OPT_PING_INTERVAL,
    OPT_HANDSHAKE_TIMEOUT,
    OPT_ORIGIN,
    OPT_SUBPROTOCOL,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_DEFLATE,
    OPT_NO_DEFLATE,
    OPT_DEFLATE_WINDOW,
    OPT_DEFLATE_SHARED,
    OPT_REUSE_PORT,
    OPT_IDLE_TIMEOUT,
    OPT_UDP_PEER_TIMEOUT,
    OPT_EXEC,
    OPT_MAX_PROCS,
    OPT_EXEC_GRACE,
    OPT_BINARY,
    OPT_PROXY,
    OPT_PUBLISH_TOKEN,
    OPT_AUTH_TOKEN,
    OPT_RATE_LIMIT,
    OPT_REDIS,
    OPT_REDIS_MAX_QUEUE,
    OPT_THREADS,
    OPT_METRICS,
    OPT_LOG_FORMAT,
};

static const struct option serve_longopts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"echo", no_argument, NULL, OPT_ECHO},
    {"broadcast", no_argument, NULL, OPT_BROADCAST},
    {"static", required_argument, NULL, OPT_STATIC},
    {"list-dirs", no_argument, NULL, OPT_LIST_DIRS},
    {"path", required_argument, NULL, OPT_PATH},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
    {"max-queue", required_argument, NULL, OPT_MAX_QUEUE},
    {"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
    {"ping-interval", required_argument, NULL, OPT_PING_INTERVAL},
    {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
    {"origin", required_argument, NULL, OPT_ORIGIN},
    {"subprotocol", required_argument, NULL, OPT_SUBPROTOCOL},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"deflate", no_argument, NULL, OPT_DEFLATE},
    {"no-deflate", no_argument, NULL, OPT_NO_DEFLATE},
    {"deflate-window", required_argument, NULL, OPT_DEFLATE_WINDOW},
    {"deflate-shared", no_argument, NULL, OPT_DEFLATE_SHARED},
    {"reuse-port", no_argument, NULL, OPT_REUSE_PORT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"udp-peer-timeout", required_argument, NULL, OPT_UDP_PEER_TIMEOUT},
    {"exec", required_argument, NULL, OPT_EXEC},
    {"max-procs", required_argument, NULL, OPT_MAX_PROCS},
    {"exec-grace", required_argument, NULL, OPT_EXEC_GRACE},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"proxy", required_argument, NULL, OPT_PROXY},
    {"publish-token", required_argument, NULL, OPT_PUBLISH_TOKEN},
    {"auth-token", required_argument, NULL, OPT_AUTH_TOKEN},
    {"rate-limit", required_argument, NULL, OPT_RATE_LIMIT},
    {"redis", required_argument, NULL, OPT_REDIS},
    {"redis-max-queue", required_argument, NULL, OPT_REDIS_MAX_QUEUE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    CLI_COMMON_LONGOPTS,
};

/* ---- options ------------------------------------------------------------- */

static bool is_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f)
            return false;
    return true;
}

/* One --listen: [ws://|tcp://|udp://]HOST:PORT. Returns 0 or an exit
 * status after saying why. */
static int add_listen(struct serve_options *opt, const char *arg)
{
    static const struct {
        const char *prefix;
        enum serve_kind kind;
    } schemes[] = {{"ws://", LISTEN_WS}, {"tcp://", LISTEN_TCP}, {"udp://", LISTEN_UDP}};
    struct serve_listen *sl;
    const char *addr = arg, *why;
    enum serve_kind kind = LISTEN_WS;
    int rv;

    if (opt->num_listens == SERVE_MAX_LISTENS)
        return cli_usage_error("--listen: at most %d", SERVE_MAX_LISTENS);
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i].prefix);
        if (strncasecmp(arg, schemes[i].prefix, n) == 0) {
            kind = schemes[i].kind;
            addr = arg + n;
            break;
        }
    }
    if (addr == arg && strstr(arg, "://"))
        return cli_usage_error("--listen '%s': expected ws://, tcp:// or udp:// (or none: a "
                               "WebSocket listener; --tls-cert makes it wss://)",
                               arg);
    sl = &opt->listens[opt->num_listens];
    rv = cli_parse_listen_addr(addr, DEFAULT_HOST, &sl->addr, &why);
    if (rv == -ENOMEM)
        return cli_usage_error("out of memory");
    if (rv < 0)
        return cli_usage_error("--listen '%s': %s (expected [tcp://|udp://]HOST:PORT, "
                               "[IPV6]:PORT or PORT)",
                               arg, why);
    sl->kind = kind;
    opt->num_listens++;
    return 0;
}

bool serve_has_kind(const struct serve_options *opt, enum serve_kind kind)
{
    for (size_t i = 0; i < opt->num_listens; i++)
        if (opt->listens[i].kind == kind)
            return true;
    return false;
}

/* Options that only a WebSocket listener uses are refused without one,
 * rather than silently ignored. */
static int check_ws_only(const struct serve_options *opt, bool deflate_given)
{
    const char *name = opt->auth_token         ? "--auth-token"
                       : opt->static_dir       ? "--static"
                       : opt->path             ? "--path"
                       : opt->origins.len      ? "--origin"
                       : opt->subprotocols.len ? "--subprotocol"
                       : opt->tls_cert         ? "--tls-cert"
                       : deflate_given ? "--deflate/--no-deflate/--deflate-window/--deflate-shared"
                                       : NULL;
    if (name && !serve_has_kind(opt, LISTEN_WS))
        return cli_usage_error("%s applies to WebSocket listeners, and every --listen is tcp:// "
                               "or udp://",
                               name);
    return 0;
}

/* The CPUs this process may run on (taskset, cgroup cpusets), at least 1. */
static unsigned usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

/* Returns 0 to run, -1 after --help, or an exit status (> 0) for an error. */
int serve_parse_options(struct serve_options *opt, int argc, char **argv)
{
    bool deflate_given = false, mode_given = false;
    uint64_t bits;
    int c, rv;

    opt->mode = SERVE_BROADCAST;
    opt->backend = WSK_BACKEND_DEFAULT;
    opt->max_message = DEFAULT_MAX_MESSAGE;
    opt->max_queue = DEFAULT_MAX_QUEUE;
    opt->max_connections = DEFAULT_MAX_CONNECTIONS;
    opt->ping_interval_ms = DEFAULT_PING_INTERVAL_MS;
    opt->handshake_timeout_ms = DEFAULT_HANDSHAKE_TIMEOUT;
    opt->has_deflate = true;
    opt->udp_peer_timeout_ms = DEFAULT_UDP_PEER_TIMEOUT;
    opt->max_procs = DEFAULT_MAX_PROCS;
    opt->exec_grace_ms = DEFAULT_EXEC_GRACE_MS;
    opt->verbosity = CLI_NORMAL;
    opt->redis_max_queue = DEFAULT_REDIS_MAX_QUEUE;
    opt->threads = 1;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":vqh", serve_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN:
            if ((rv = add_listen(opt, optarg)) != 0)
                return rv;
            break;
        case OPT_ECHO:
        case OPT_BROADCAST:
        case OPT_EXEC:
        case OPT_PROXY: {
            enum serve_mode m = c == OPT_ECHO    ? SERVE_ECHO
                                : c == OPT_EXEC  ? SERVE_EXEC
                                : c == OPT_PROXY ? SERVE_PROXY
                                                 : SERVE_BROADCAST;
            if (mode_given && m != opt->mode)
                return cli_usage_error("--echo, --broadcast, --exec and --proxy exclude each "
                                       "other: choose one");
            if (c == OPT_PROXY)
                opt->proxy_url = optarg;
            if (c == OPT_EXEC && !*optarg)
                return cli_usage_error("--exec needs a command, e.g. --exec 'date'");
            if (c == OPT_EXEC)
                opt->exec_command = optarg;
            opt->mode = m;
            mode_given = true;
            break;
        }
        case OPT_MAX_PROCS:
            if (cli_parse_count(optarg, 1, 1000000, &opt->max_procs) < 0)
                return cli_usage_error("--max-procs '%s': expected a number from 1 to 1000000",
                                       optarg);
            break;
        case OPT_EXEC_GRACE:
            if (cli_parse_seconds(optarg, &opt->exec_grace_ms) < 0 || opt->exec_grace_ms == 0)
                return cli_usage_error("--exec-grace '%s': expected positive seconds like 2 or "
                                       "0.5",
                                       optarg);
            break;
        case OPT_BINARY:
            opt->is_binary = true;
            break;
        case OPT_PUBLISH_TOKEN:
            if (!*optarg || !is_printable(optarg))
                return cli_usage_error("--publish-token: expected a token of printable "
                                       "characters, no spaces");
            opt->publish_token = optarg;
            break;
        case OPT_AUTH_TOKEN:
            if (!*optarg || !is_printable(optarg) || strlen(optarg) > 256)
                return cli_usage_error("--auth-token: expected a token of printable characters, "
                                       "no spaces, at most 256");
            opt->auth_token = optarg;
            break;
        case OPT_RATE_LIMIT: {
            char *end;
            unsigned long n = strtoul(optarg, &end, 10);
            if (end == optarg || n == 0 || n > 1000000 || (*end && strcmp(end, "/s") != 0))
                return cli_usage_error("--rate-limit '%s': expected messages a second like 20/s",
                                       optarg);
            opt->rate_limit = (uint32_t)n;
            break;
        }
        case OPT_REDIS:
            opt->redis_url = optarg;
            break;
        case OPT_REDIS_MAX_QUEUE:
            if (cli_parse_bytes(optarg, SIZE_MAX, &opt->redis_max_queue) < 0 ||
                !opt->redis_max_queue)
                return cli_usage_error("--redis-max-queue '%s': expected a size like 16M", optarg);
            break;
        case OPT_THREADS: {
            uint64_t n;
            if (strcmp(optarg, "auto") == 0)
                n = usable_cpus();
            else if (cli_parse_count(optarg, 1, MAX_THREADS, &n) < 0)
                return cli_usage_error("--threads '%s': expected a number from 1 to %u, or auto",
                                       optarg, MAX_THREADS);
            opt->threads = (unsigned)(n < MAX_THREADS ? n : MAX_THREADS);
            break;
        }
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return cli_usage_error("--log-format '%s': expected text or json", optarg);
            opt->is_log_json = !strcmp(optarg, "json");
            break;
        case OPT_METRICS: {
            const char *why = NULL;
            cli_listen_addr_reset(&opt->metrics);
            rv = cli_parse_listen_addr(optarg, DEFAULT_HOST, &opt->metrics, &why);
            if (rv == -ENOMEM)
                return cli_usage_error("out of memory");
            if (rv < 0)
                return cli_usage_error("--metrics '%s': %s; expected [HOST:]PORT like 9100 or "
                                       "127.0.0.1:9100",
                                       optarg, why);
            break;
        }
        case OPT_STATIC:
            if (!*optarg)
                return cli_usage_error("--static needs a directory");
            opt->static_dir = optarg;
            break;
        case OPT_LIST_DIRS:
            opt->is_list_dirs = true;
            break;
        case OPT_PATH:
            if (optarg[0] != '/' || !is_printable(optarg) || strchr(optarg, '?'))
                return cli_usage_error("--path '%s': expected a path like /ws (starting with "
                                       "'/', no spaces, no query)",
                                       optarg);
            opt->path = optarg;
            break;
        case OPT_BACKEND:
            if (wsk_backend_parse(optarg, &opt->backend) < 0)
                return cli_usage_error("--backend '%s': expected epoll, poll, select or io_uring",
                                       optarg);
            break;
        case OPT_MAX_MESSAGE:
            if (cli_parse_bytes(optarg, UINT64_MAX, &opt->max_message) < 0)
                return cli_usage_error("--max-message '%s': expected a size like 65536, 64k "
                                       "or 16M",
                                       optarg);
            break;
        case OPT_MAX_QUEUE:
            if (cli_parse_bytes(optarg, SIZE_MAX, &opt->max_queue) < 0)
                return cli_usage_error("--max-queue '%s': expected a size like 65536, 64k or "
                                       "1M",
                                       optarg);
            break;
        case OPT_MAX_CONNECTIONS:
            if (cli_parse_count(optarg, 1, SIZE_MAX, &opt->max_connections) < 0)
                return cli_usage_error("--max-connections '%s': expected a positive number",
                                       optarg);
            break;
        case OPT_PING_INTERVAL:
            if (cli_parse_seconds(optarg, &opt->ping_interval_ms) < 0)
                return cli_usage_error("--ping-interval '%s': expected seconds like 20 or 0.5 "
                                       "(0 disables pings)",
                                       optarg);
            if (opt->ping_interval_ms == 0)
                opt->ping_interval_ms = UINT32_MAX;
            break;
        case OPT_HANDSHAKE_TIMEOUT:
            if (cli_parse_seconds(optarg, &opt->handshake_timeout_ms) < 0 ||
                opt->handshake_timeout_ms == 0)
                return cli_usage_error("--handshake-timeout '%s': expected positive seconds like "
                                       "10 or 0.5",
                                       optarg);
            break;
        case OPT_ORIGIN:
            if (!*optarg || !is_printable(optarg))
                return cli_usage_error("--origin '%s': expected an origin like "
                                       "https://example.com",
                                       optarg);
            if (cli_strv_push(&opt->origins, optarg) < 0)
                return cli_usage_error("out of memory");
            break;
        case OPT_SUBPROTOCOL:
            if ((rv = cli_add_subprotocol(&opt->subprotocols, optarg)) != 0)
                return rv;
            break;
        case OPT_TLS_CERT:
            if (!*optarg)
                return cli_usage_error("--tls-cert needs a file");
            opt->tls_cert = optarg;
            break;
        case OPT_TLS_KEY:
            if (!*optarg)
                return cli_usage_error("--tls-key needs a file");
            opt->tls_key = optarg;
            break;
        case OPT_DEFLATE:
            opt->has_deflate = true;
            deflate_given = true;
            break;
        case OPT_NO_DEFLATE:
            opt->has_deflate = false;
            deflate_given = true;
            break;
        case OPT_IDLE_TIMEOUT:
            if (cli_parse_seconds(optarg, &opt->idle_timeout_ms) < 0)
                return cli_usage_error("--idle-timeout '%s': expected seconds like 300 or 0.5 "
                                       "(0: none)",
                                       optarg);
            break;
        case OPT_UDP_PEER_TIMEOUT:
            if (cli_parse_seconds(optarg, &opt->udp_peer_timeout_ms) < 0 ||
                opt->udp_peer_timeout_ms == 0)
                return cli_usage_error("--udp-peer-timeout '%s': expected positive seconds like "
                                       "60 or 0.5",
                                       optarg);
            break;
        case OPT_REUSE_PORT:
            opt->reuse_port = true;
            break;
        case OPT_DEFLATE_SHARED:
            opt->is_deflate_shared = true;
            deflate_given = true;
            break;
        case OPT_DEFLATE_WINDOW:
            /* RFC 7692 allows 8, but zlib cannot compress raw deflate with
             * an 8-bit window: python websockets clients told to use it fail
             * the handshake. */
            if (cli_parse_count(optarg, 9, 15, &bits) < 0)
                return cli_usage_error("--deflate-window '%s': expected window bits from 9 to 15",
                                       optarg);
            opt->deflate_window = (uint8_t)bits;
            deflate_given = true;
            break;
        case 'h':
            fputs(serve_usage, stdout);
            fputs(serve_usage_more, stdout);
            fputs(serve_usage_limits, stdout);
            fputs(serve_usage_notes, stdout);
            return -1;
        default:
            if ((rv = cli_common_option(c, argv, serve_usage, serve_longopts, CLI_DEBUG,
                                        &opt->verbosity)) != 0)
                return rv;
            break;
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!opt->tls_cert != !opt->tls_key)
        return cli_usage_error("%s needs %s too", opt->tls_cert ? "--tls-cert" : "--tls-key",
                               opt->tls_cert ? "--tls-key" : "--tls-cert");
    if (opt->deflate_window && !opt->has_deflate)
        return cli_usage_error("--deflate-window has no effect with --no-deflate");
    if (opt->is_deflate_shared && !opt->has_deflate)
        return cli_usage_error("--deflate-shared has no effect with --no-deflate");
    if (opt->num_listens == 0 && (rv = add_listen(opt, DEFAULT_HOST ":8080")) != 0)
        return rv;
    if (opt->is_list_dirs && !opt->static_dir)
        return cli_usage_error("--list-dirs is for --static DIR");
    if (opt->is_binary && opt->mode != SERVE_EXEC)
        return cli_usage_error("--binary is for --exec");
    if (opt->rate_limit && opt->mode != SERVE_BROADCAST && opt->mode != SERVE_ECHO)
        return cli_usage_error("--rate-limit is for --broadcast and --echo");
    if (opt->publish_token && opt->mode != SERVE_BROADCAST)
        return cli_usage_error("--publish-token is for --broadcast (POST /publish/ROOM)");
    if (opt->mode == SERVE_EXEC &&
        (serve_has_kind(opt, LISTEN_TCP) || serve_has_kind(opt, LISTEN_UDP) ||
         !serve_has_kind(opt, LISTEN_WS)))
        return cli_usage_error("--exec runs a program per WebSocket connection: every --listen "
                               "must be a WebSocket listener");
    if (opt->mode == SERVE_EXEC && opt->threads > 1)
        return cli_usage_error("--threads: not with --exec (each connection runs a program, and "
                               "the programs use the other cores)");
    if (opt->mode == SERVE_PROXY && serve_has_kind(opt, LISTEN_UDP))
        return cli_usage_error("--proxy relays WebSocket and TCP connections, not udp://");
    if ((rv = serve_redis_check(opt)) != 0)
        return rv;
    return check_ws_only(opt, deflate_given);
}
