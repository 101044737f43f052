/* wsk serve: a WebSocket server in one command.
 *
 * Broadcast mode relays every message to every client (the sender too, which
 * is how the built-in chat page shows your own messages); echo mode sends
 * each message back to its sender. The HTTP side serves the chat page, or a
 * directory with --static. With --tls-cert and --tls-key the same port speaks
 * https:// and wss:// only, and SIGHUP reloads the certificate; without TLS,
 * SIGHUP is logged and ignored, never fatal. Everything else
 * is the library's: this file turns options into a wsk_server_config and
 * events into log lines. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chat_page.h"
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
/* permessage-deflate is on by default with python websockets' server
 * settings: 12-bit windows both ways and zlib memLevel 5 cost about 50 KB per
 * connection that has sent and received compressed messages (wsk/deflate.h
 * has the measurements), against about 190 KB with 15-bit windows, and chat
 * messages still shrink several-fold. Browsers offer client_max_window_bits,
 * so they accept the smaller window. */
#define DEFAULT_DEFLATE_WINDOW 12

static const char serve_usage[] =
    "usage: wsk serve [options]\n"
    "\n"
    "Runs a WebSocket server. With no options it listens on 127.0.0.1:8080, relays\n"
    "every message to every connected client and serves a chat page at\n"
    "http://127.0.0.1:8080/: open it in two browser tabs. Raw TCP and UDP\n"
    "listeners can join the same room (--listen tcp://... --listen udp://...).\n"
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
    "  --broadcast            one room for every listener (the default): a\n"
    "                         WebSocket message goes to every WebSocket client,\n"
    "                         the sender included; a TCP line (up to a newline)\n"
    "                         and a UDP datagram go to everyone else. Across\n"
    "                         kinds, a message is a TCP line and a UDP datagram,\n"
    "                         and a line or datagram is a WebSocket text message\n"
    "                         (binary when it is not UTF-8)\n"
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
    "                         built-in chat page (default: the chat page at /)\n"
    "  --path PATH            accept WebSocket upgrades only on PATH, e.g. /ws\n"
    "                         (default: any path)\n"
    "  --origin ORIGIN        accept upgrades only from pages of ORIGIN, e.g.\n"
    "                         https://example.com; repeat for more; other origins\n"
    "                         get HTTP 403 (default: any origin)\n"
    "  --subprotocol P        offer subprotocol P; repeat for more, in order of\n"
    "                         preference (default: none)\n";

/* C17 compilers need not accept a literal over 4095 characters: the help
 * comes in three. */
static const char serve_usage_more[] =
    "  --backend NAME         event loop: epoll, poll or select (default epoll)\n"
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
    "  -v, --verbose          log each connection opening and closing on stderr\n"
    "                         (peer, path, close code); twice: library debug too\n"
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
    OPT_REUSE_PORT,
    OPT_IDLE_TIMEOUT,
    OPT_UDP_PEER_TIMEOUT,
    OPT_EXEC,
    OPT_MAX_PROCS,
    OPT_EXEC_GRACE,
    OPT_BINARY,
    OPT_PROXY,
};

static const struct option serve_longopts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"echo", no_argument, NULL, OPT_ECHO},
    {"broadcast", no_argument, NULL, OPT_BROADCAST},
    {"static", required_argument, NULL, OPT_STATIC},
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
    {"reuse-port", no_argument, NULL, OPT_REUSE_PORT},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"udp-peer-timeout", required_argument, NULL, OPT_UDP_PEER_TIMEOUT},
    {"exec", required_argument, NULL, OPT_EXEC},
    {"max-procs", required_argument, NULL, OPT_MAX_PROCS},
    {"exec-grace", required_argument, NULL, OPT_EXEC_GRACE},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"proxy", required_argument, NULL, OPT_PROXY},
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

static bool has_kind(const struct serve_options *opt, enum serve_kind kind)
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
    const char *name = opt->static_dir         ? "--static"
                       : opt->path             ? "--path"
                       : opt->origins.len      ? "--origin"
                       : opt->subprotocols.len ? "--subprotocol"
                       : opt->tls_cert         ? "--tls-cert"
                       : deflate_given         ? "--deflate/--no-deflate/--deflate-window"
                                               : NULL;
    if (name && !has_kind(opt, LISTEN_WS))
        return cli_usage_error("%s applies to WebSocket listeners, and every --listen is tcp:// "
                               "or udp://",
                               name);
    return 0;
}

/* Returns 0 to run, -1 after --help, or an exit status (> 0) for an error. */
static int parse_options(struct serve_options *opt, int argc, char **argv)
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
        case OPT_STATIC:
            if (!*optarg)
                return cli_usage_error("--static needs a directory");
            opt->static_dir = optarg;
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
                return cli_usage_error("--backend '%s': expected epoll, poll or select", optarg);
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
            fputs(serve_usage_notes, stdout);
            return -1;
        default:
            if ((rv = cli_common_option(c, argv, serve_usage, CLI_DEBUG, &opt->verbosity)) != 0)
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
    if (opt->num_listens == 0 && (rv = add_listen(opt, DEFAULT_HOST ":8080")) != 0)
        return rv;
    if (opt->is_binary && opt->mode != SERVE_EXEC)
        return cli_usage_error("--binary is for --exec");
    if (opt->mode == SERVE_EXEC &&
        (has_kind(opt, LISTEN_TCP) || has_kind(opt, LISTEN_UDP) || !has_kind(opt, LISTEN_WS)))
        return cli_usage_error("--exec runs a program per WebSocket connection: every --listen "
                               "must be a WebSocket listener");
    if (opt->mode == SERVE_PROXY && has_kind(opt, LISTEN_UDP))
        return cli_usage_error("--proxy relays WebSocket and TCP connections, not udp://");
    return check_ws_only(opt, deflate_given);
}

/* ---- events -------------------------------------------------------------- */

/* What -v needs to log a connection's close: the peer's address is kept
 * from on_open, where it is known for certain. */
struct conn_info {
    char *path;
    char peer[]; /* then the path, both NUL-terminated */
};

static void on_open(struct wsk_conn *conn, const struct wsk_open_event *ev, void *user_data)
{
    struct serve *s = user_data;
    struct conn_info *info;

    if (s->opt.mode == SERVE_EXEC) {
        serve_exec_open(s, conn, ev);
        return;
    }
    if (s->opt.mode == SERVE_PROXY) {
        serve_proxy_open(s, conn);
        return;
    }
    /* Only -v needs the address: no getpeername() per connection otherwise. */
    if (s->opt.verbosity < CLI_VERBOSE)
        return;
    const char *peer = wsk_conn_peer(conn);
    size_t peer_len = strlen(peer);
    cli_verbose("%s: open %.*s%s%.*s%s%.*s", peer, (int)ev->path.len, ev->path.ptr,
                ev->subprotocol.len ? ", subprotocol " : "", (int)ev->subprotocol.len,
                ev->subprotocol.ptr, ev->extensions.len ? ", extensions " : "",
                (int)ev->extensions.len, ev->extensions.ptr);
    info = malloc(sizeof *info + peer_len + 1 + ev->path.len + 1);
    if (!info)
        return; /* only the close line goes without the details */
    memcpy(info->peer, peer, peer_len + 1);
    info->path = info->peer + peer_len + 1;
    memcpy(info->path, ev->path.ptr, ev->path.len);
    info->path[ev->path.len] = '\0';
    wsk_conn_set_data(conn, info);
}

/* Echo the message. When the peer does not read its echoes, the send queue
 * passes its cap and the library stops reading from that peer until it
 * catches up (WSK_EBACKPRESSURE says so): TCP pushes back on the sender and
 * memory stays bounded, so there is nothing more to do here. */
static void echo(struct serve *s, struct wsk_conn *conn, const struct wsk_message *msg)
{
    (void)s;
    int rv = wsk_conn_send(conn, msg->opcode, msg->data, msg->len);
    if (rv < 0 && rv != WSK_EBACKPRESSURE && rv != WSK_ESTATE)
        cli_log(CLI_NORMAL, "%s: cannot echo: %s", wsk_conn_peer(conn), wsk_strerror(rv));
}

static void on_message(struct wsk_conn *conn, const struct wsk_message *msg, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_EXEC) {
        serve_exec_message(s, conn, msg);
    } else if (s->opt.mode == SERVE_PROXY) {
        serve_proxy_message(s, conn, msg);
    } else if (s->opt.mode == SERVE_ECHO) {
        echo(s, conn, msg);
    } else {
        int rv = wsk_server_broadcast(s->srv, msg->opcode, msg->data, msg->len);
        if (rv < 0)
            cli_log(CLI_NORMAL, "broadcast failed: %s", wsk_strerror(rv));
        serve_room_from_ws(s, msg);
    }
}

static void on_close(struct wsk_conn *conn, const struct wsk_close_event *ev, void *user_data)
{
    struct serve *s = user_data;
    struct conn_info *info = wsk_conn_get_data(conn);

    if (s->opt.mode == SERVE_EXEC) {
        if (s->opt.verbosity >= CLI_VERBOSE && ev->was_open)
            cli_verbose("%s: closed: %u%s%.*s", wsk_conn_peer(conn), ev->code,
                        ev->reason.len ? " " : "", (int)ev->reason.len, ev->reason.ptr);
        serve_exec_close(s, conn);
        return;
    }
    if (s->opt.mode == SERVE_PROXY) {
        if (s->opt.verbosity >= CLI_VERBOSE && ev->was_open)
            cli_verbose("%s: closed: %u%s%.*s", wsk_conn_peer(conn), ev->code,
                        ev->reason.len ? " " : "", (int)ev->reason.len, ev->reason.ptr);
        serve_proxy_close(s, conn);
        return;
    }
    if (s->opt.verbosity >= CLI_VERBOSE && ev->was_open) {
        cli_verbose("%s: closed %s: %u%s%.*s%s%s", info ? info->peer : wsk_conn_peer(conn),
                    info ? info->path : "?", ev->code, ev->reason.len ? " " : "",
                    (int)ev->reason.len, ev->reason.ptr, ev->error ? ", " : "",
                    ev->error ? wsk_strerror(ev->error) : "");
    } else if (s->opt.verbosity >= CLI_DEBUG && ev->error) {
        cli_log(CLI_DEBUG, "%s: handshake failed: %s", wsk_conn_peer(conn),
                wsk_strerror(ev->error));
    }
    free(info);
    wsk_conn_set_data(conn, NULL);
}

static void on_drain(struct wsk_conn *conn, void *user_data)
{
    struct serve *s = user_data;

    if (s->opt.mode == SERVE_EXEC)
        serve_exec_drain(s, conn);
    else if (s->opt.mode == SERVE_PROXY)
        serve_proxy_drain(s, conn);
}

/* The server's wsk_log_cb: library diagnostics as usual, except while a
 * certificate is being loaded, when errors are kept for a one-line report. */
static void on_library_log(int level, const char *msg, void *user_data)
{
    struct serve *s = user_data;

    if (s->is_capturing_log) {
        if (level == 0 && !s->log_error[0])
            snprintf(s->log_error, sizeof s->log_error, "%s", msg);
        return;
    }
    cli_log_library(level, msg, NULL);
}

/* SIGHUP: by convention "reread your configuration". The only thing wsk serve
 * can reread is its certificate and key, renewed on disk; connections already
 * open go on with the old ones. Without TLS there is nothing to do, but the
 * signal is still handled: its default action would kill the server with no
 * close frames, and an operator running `kill -HUP` after a renewal should
 * not lose every client for it. */
static void on_reload(struct wsk_loop *loop, int signo, void *data)
{
    struct serve *s = data;
    int rv;

    (void)loop;
    (void)signo;
    if (!s->opt.tls_cert) {
        cli_info("SIGHUP: nothing to reload (no TLS)");
        return;
    }
    s->is_capturing_log = true;
    s->log_error[0] = '\0';
    rv = wsk_server_reload_tls(s->srv);
    s->is_capturing_log = false;
    if (rv < 0)
        cli_error("SIGHUP: cannot reload the TLS certificate and key, still using the old ones: "
                  "%s",
                  s->log_error[0] ? s->log_error : wsk_strerror(rv));
    else
        cli_info("SIGHUP: TLS certificate and key reloaded");
}

static void on_signal(struct wsk_loop *loop, int signo, void *data)
{
    struct serve *s = data;

    (void)loop;
    if (s->is_shutting_down) {
        /* The user does not want to wait for the close handshakes. _exit:
         * nothing left is worth flushing, and leak checkers would only
         * report the server we deliberately did not free. Programs of
         * --exec must not outlive it. */
        serve_exec_kill_all(s);
        _exit(128 + signo);
    }
    s->is_shutting_down = true;
    cli_info("shutting down (%s again to exit at once)",
             signo == SIGINT ? "Ctrl-C" : "the same signal");
    if (s->srv)
        wsk_server_shutdown(s->srv, WSK_CLOSE_GOING_AWAY, "server shutting down");
    serve_raw_shutdown(s);
}

/* ---- running ------------------------------------------------------------- */

static int check_static_dir(const char *dir)
{
    struct stat st;

    if (stat(dir, &st) < 0)
        return cli_usage_error("--static '%s': %s", dir, wsk_strerror(-errno));
    if (!S_ISDIR(st.st_mode))
        return cli_usage_error("--static '%s': not a directory", dir);
    if (access(dir, R_OK | X_OK) < 0)
        return cli_usage_error("--static '%s': %s", dir, wsk_strerror(-errno));
    return 0;
}

/* What the usual wsk_server_listen() failures mean for the user; the OS's
 * own words ("Cannot assign requested address") do not say. */
const char *serve_listen_hint(int err, uint16_t port)
{
    if (err == -EADDRNOTAVAIL)
        return " (not an address of this machine)";
    if (err == -EACCES && port > 0 && port < 1024)
        return " (ports below 1024 need privileges)";
    return "";
}

/* One line per listener, in the order given, with the port bound. */
static void print_banner(const struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    const char *tls = opt->tls_cert ? "s" : "";
    const char *mode = opt->mode == SERVE_ECHO    ? "echo"
                       : opt->mode == SERVE_EXEC  ? "exec"
                       : opt->mode == SERVE_PROXY ? "proxy"
                                                  : "broadcast";
    const struct serve_listen *first_ws = NULL;

    for (size_t i = 0; i < opt->num_listens; i++) {
        const struct serve_listen *sl = &opt->listens[i];
        const char *lb = sl->addr.is_ipv6 ? "[" : "", *rb = sl->addr.is_ipv6 ? "]" : "";
        unsigned port = sl->port;

        if (sl->kind == LISTEN_WS) {
            printf("wsk serve: listening on http%s://%s%s%s:%u/ (WebSocket ws%s://%s%s%s:%u%s, "
                   "%s)\n",
                   tls, lb, sl->addr.host, rb, port, tls, lb, sl->addr.host, rb, port,
                   opt->path ? opt->path : "/", mode);
            if (!first_ws)
                first_ws = sl;
        } else {
            printf("wsk serve: listening on %s://%s%s%s:%u (%s)\n",
                   sl->kind == LISTEN_TCP ? "tcp" : "udp", lb, sl->addr.host, rb, port, mode);
        }
    }
    if (first_ws && opt->mode == SERVE_BROADCAST && !opt->static_dir &&
        opt->verbosity > CLI_QUIET) {
        const char *lb = first_ws->addr.is_ipv6 ? "[" : "", *rb = first_ws->addr.is_ipv6 ? "]" : "";
        printf("open http%s://%s%s%s:%u/ in two browser tabs to chat\n", tls, lb,
               first_ws->addr.host, rb, (unsigned)first_ws->port);
    }
    fflush(stdout);
}

/* The WebSocket server and its listeners. Returns 0 or an exit status. */
static int ws_start(struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    struct wsk_server_config cfg;
    int rv;

    wsk_server_config_init(&cfg);
    cfg.handlers.on_open = on_open;
    cfg.handlers.on_message = on_message;
    cfg.handlers.on_close = on_close;
    cfg.handlers.on_drain = on_drain;
    cfg.user_data = s;
    cfg.log = on_library_log;
    cfg.limits.max_message = opt->max_message;
    cfg.limits.max_send_queue = (size_t)opt->max_queue;
    cfg.limits.handshake_timeout_ms = opt->handshake_timeout_ms;
    cfg.limits.ping_interval_ms = opt->ping_interval_ms;
    cfg.max_connections = (size_t)opt->max_connections;
    cfg.subprotocols = opt->subprotocols.v;
    cfg.num_subprotocols = opt->subprotocols.len;
    cfg.origins = opt->origins.v;
    cfg.num_origins = opt->origins.len;
    cfg.ws_path = opt->path;
    cfg.static_dir = opt->static_dir;
    cfg.reuse_port = opt->reuse_port;
    if (!opt->static_dir) {
        cfg.index_page = wsk_cli_chat_page;
        cfg.index_page_len = (size_t)wsk_cli_chat_page_len;
    }
    cfg.tls_cert_file = opt->tls_cert;
    cfg.tls_key_file = opt->tls_key;
    wsk_deflate_config_init(&cfg.deflate);
    cfg.deflate.enabled = opt->has_deflate;
    cfg.deflate.server_max_window_bits =
        opt->deflate_window ? opt->deflate_window : DEFAULT_DEFLATE_WINDOW;
    cfg.deflate.client_max_window_bits = cfg.deflate.server_max_window_bits;
    s->is_capturing_log = true;
    s->log_error[0] = '\0';
    rv = wsk_server_new(&s->srv, s->loop, &cfg);
    s->is_capturing_log = false;
    if (rv < 0) {
        /* The library's reason, such as "private key key.pem does not match
         * the certificate cert.pem", says it all. */
        if (s->log_error[0])
            cli_error("%s", s->log_error);
        else
            cli_error("cannot create the server: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }

    for (size_t i = 0; i < opt->num_listens; i++) {
        struct serve_listen *sl = &s->opt.listens[i];
        if (sl->kind != LISTEN_WS)
            continue;
        rv = wsk_server_listen(s->srv, sl->addr.host, sl->addr.port);
        if (rv < 0) {
            const char *lb = sl->addr.is_ipv6 ? "[" : "", *rb = sl->addr.is_ipv6 ? "]" : "";
            cli_error("cannot listen on %s%s%s:%u: %s%s", lb, sl->addr.host, rb,
                      (unsigned)sl->addr.port, wsk_strerror(rv),
                      serve_listen_hint(rv, sl->addr.port));
            return CLI_EXIT_FAILURE;
        }
        sl->port = (uint16_t)rv;
    }
    return 0;
}

static int run(struct serve *s)
{
    const struct serve_options *opt = &s->opt;
    int rv;

    if ((rv = cli_loop_new(&s->loop, opt->backend)) != 0)
        return rv;
    if (opt->mode == SERVE_EXEC && (rv = serve_exec_start(s)) != 0)
        return rv;
    if (has_kind(opt, LISTEN_WS) && (rv = ws_start(s)) != 0)
        return rv;
    if ((rv = serve_raw_start(s)) != 0)
        return rv;

    if ((rv = wsk_loop_signal(s->loop, SIGINT, on_signal, s)) < 0 ||
        (rv = wsk_loop_signal(s->loop, SIGTERM, on_signal, s)) < 0 ||
        (rv = wsk_loop_signal(s->loop, SIGHUP, on_reload, s)) < 0) {
        cli_error("cannot handle signals: %s", wsk_strerror(rv));
        return CLI_EXIT_FAILURE;
    }

    print_banner(s);
    if ((rv = cli_loop_run(s->loop)) != 0)
        return rv;
    cli_verbose("stopped");
    return CLI_EXIT_OK;
}

int cli_serve(int argc, char **argv)
{
    struct serve s = {0};
    int status;

    cli_log_init("wsk serve", CLI_NORMAL);
    status = parse_options(&s.opt, argc, argv);
    if (status == 0 && s.opt.mode == SERVE_PROXY)
        status = serve_proxy_check(&s.opt, &s.proxy_host, &s.proxy_port);
    if (status == 0) {
        cli_log_init("wsk serve", s.opt.verbosity);
        if (s.opt.static_dir)
            status = check_static_dir(s.opt.static_dir);
    }
    if (status == 0) {
        /* A peer that vanishes must not kill the server through a write. */
        signal(SIGPIPE, SIG_IGN);
        status = run(&s);
    }
    wsk_server_free(s.srv);
    serve_raw_free(&s);
    serve_exec_free(&s);
    free(s.proxy_host);
    wsk_loop_free(s.loop);
    for (size_t i = 0; i < s.opt.num_listens; i++)
        cli_listen_addr_reset(&s.opt.listens[i].addr);
    cli_strv_reset(&s.opt.origins);
    cli_strv_reset(&s.opt.subprotocols);
    return status < 0 ? CLI_EXIT_OK : status;
}
