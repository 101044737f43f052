/* wsk connect: its options, their help and their checks. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connect.h"

#define DEFAULT_MAX_MESSAGE     (16u * 1024 * 1024)
#define DEFAULT_CONNECT_TIMEOUT 10000u
#define DEFAULT_WAIT            1000u

static const char connect_usage[] =
    "usage: wsk connect URL [options]\n"
    "\n"
    "Connects to the WebSocket server at URL: ws://HOST[:PORT][/PATH][?QUERY], or\n"
    "wss://... for WebSocket over TLS, where HOST is a name, an IPv4 address or an\n"
    "IPv6 address in brackets. A wss:// server's certificate must be valid for HOST\n"
    "and issued by a CA of the system's store (or of --cacert). With\n"
    "tcp://HOST:PORT or udp://HOST:PORT it speaks raw TCP (lines) or UDP (one\n"
    "datagram per line) the same way.\n"
    "\n"
    "When stdin and stdout are terminals it is an interactive client: each line you\n"
    "type is sent as a text message, and messages that arrive print above the prompt\n"
    "as '< TEXT' (binary ones as '< (binary, N bytes)' and their first bytes in hex).\n"
    "Enter sends; Backspace, Ctrl-U, Ctrl-W, Ctrl-K, Left/Right and Home/End edit;\n"
    "Up/Down recall earlier lines. Commands: /ping [DATA] (its pong shows the\n"
    "round-trip time), /close [CODE [REASON]], /help; //TEXT sends /TEXT.\n"
    "Ctrl-D on an empty line or Ctrl-C closes the connection.\n"
    "\n"
    "Otherwise each line of stdin, without its newline, is sent as a message, and\n"
    "each message received is written to stdout followed by a newline (--base64:\n"
    "'text BASE64' or 'binary BASE64'). At the end of stdin the client keeps\n"
    "printing replies until none has come for --wait seconds (default 1), then\n"
    "closes the connection (1000); with --no-close it waits for the server's close.\n"
    "When the server closes first, the lines not sent yet are dropped.\n"
    "tcp://: lines go out with their newline and bytes that arrive are\n"
    "written as they come; at the end of stdin the client shuts down its side and\n"
    "prints what arrives until the server closes (at most 5 s). udp://: each line is\n"
    "a datagram, each datagram received a line; after the end of stdin, replies are\n"
    "awaited for --wait seconds.\n"
    "\n"
    "options:\n"
    "  --header 'NAME: VALUE'  add a header to the handshake request; repeat for more\n"
    "                          (default: none)\n"
    "  --subprotocol P         offer subprotocol P; repeat for more, in order of\n"
    "                          preference (default: none)\n"
    "  --origin ORIGIN         send this Origin header, e.g. http://localhost\n"
    "                          (default: no Origin header)\n"
    "  --binary                send stdin lines as binary messages (default: text,\n"
    "                          which must be valid UTF-8); tcp:// and udp://: pass\n"
    "                          bytes untouched both ways (UDP: a datagram per read)\n"
    "  --echo                  ignore stdin and send every message received back\n"
    "                          unchanged, text as text and binary as binary,\n"
    "                          until the server closes\n"
    "  --backend NAME          event loop: epoll, poll, select or io_uring (default epoll)\n"
    "  --max-message BYTES     largest message accepted from the server, and longest\n"
    "                          stdin line sent (default 16M)\n";

/* C17 compilers need not accept a literal over 4095 characters. */
static const char connect_usage_more[] =
    "  --connect-timeout SECONDS\n"
    "                          time allowed for the name lookup, the TCP\n"
    "                          connection, TLS and the handshake together\n"
    "                          (default 10)\n"
    "  --cacert FILE           wss://: trust only the CA certificates in FILE (PEM),\n"
    "                          e.g. a private CA, instead of the system's store\n"
    "  --insecure              wss://: do not verify the server's certificate at all\n"
    "                          (for tests; prints a warning)\n"
    "  --cert FILE, --key FILE wss://: present this client certificate (PEM chain)\n"
    "                          and its key (PEM, not encrypted) when the server\n"
    "                          asks for one\n"
    "  --proxy URL             tunnel through this proxy: http://[USER:PASS@]HOST\n"
    "                          [:PORT] (CONNECT), socks5:// (names resolved here) or\n"
    "                          socks5h:// (by the proxy); port 1080 by default;\n"
    "                          '' for none. Default: https_proxy (wss://), http_proxy\n"
    "                          (ws://) or all_proxy, unless no_proxy lists the host,\n"
    "                          as curl reads them; never for localhost or 127.x/::1\n"
    "  --wait SECONDS          after the end of stdin, close once no message has\n"
    "                          come for this long (each one restarts the wait;\n"
    "                          default 1; 0: close at once)\n"
    "  --no-close              after the end of stdin, do not close: print what\n"
    "                          comes until the server closes (or Ctrl-C)\n"
    "  --base64                print each message received as one line, 'text ' or\n"
    "                          'binary ' and the base64 of its bytes: newlines, NULs\n"
    "                          and invalid UTF-8 survive, and the kinds stay apart\n"
    "  --user-agent TEXT       the User-Agent header (default: wsk/VERSION)\n"
    "  --ping-interval SECONDS ping the server this often; no pong within as long\n"
    "                          (at most 20 s) closes with 1011 (default 20; 0: none)\n"
    "  --reconnect             when the connection fails or is lost (not after\n"
    "                          Ctrl-C, the end of stdin, /close, or HTTP 401/403/\n"
    "                          404), connect again after 0.5 s, doubling up to\n"
    "                          30 s; stdin waits meanwhile (ws:// and wss://)\n"
    "  --show-ping             print pings and pongs that arrive (on a terminal\n"
    "                          above the prompt, else on stderr)\n"
    "  --no-deflate            do not offer permessage-deflate compression (default:\n"
    "                          offered, as browsers and python websockets do; used\n"
    "                          only if the server accepts)\n"
    "  -v, --verbose           report connecting and closing on stderr; twice:\n"
    "                          library debug messages too\n"
    "  -q, --quiet             print only errors (and the messages received)\n"
    "  -h, --help              show this help\n"
    "\n"
    "BYTES take an optional k or m suffix (1024-based): 64k, 16M. SECONDS may have a\n"
    "fraction: 0.5.\n"
    "\n"
    "Exit status: 0 once the close handshake is done with 1000 (normal), 1001\n"
    "(going away) or no code, also when the server closes first, before all of\n"
    "stdin is sent, or resets TCP right after its close frame; 3 when the server\n"
    "closed with any other code (1002-1015: an error; 3000-4999: the\n"
    "application's), said in one line on stderr; 1 when connecting fails (with a\n"
    "hint when the fix is likely: wss:// for a TLS port, --cacert or --insecure,\n"
    "not a WebSocket endpoint), the handshake is rejected, the peer breaks the\n"
    "protocol or the connection is lost; 2 for a bad command line.\n";
enum {
    OPT_HEADER = 256,
    OPT_SUBPROTOCOL,
    OPT_ORIGIN,
    OPT_BINARY,
    OPT_ECHO,
    OPT_BACKEND,
    OPT_MAX_MESSAGE,
    OPT_CONNECT_TIMEOUT,
    OPT_CACERT,
    OPT_INSECURE,
    OPT_NO_DEFLATE,
    OPT_WAIT,
    OPT_NO_CLOSE,
    OPT_BASE64,
    OPT_USER_AGENT,
    OPT_SHOW_PING,
    OPT_PING_INTERVAL,
    OPT_CERT,
    OPT_KEY,
    OPT_RECONNECT,
    OPT_PROXY,
};

static const struct option connect_longopts[] = {
    {"header", required_argument, NULL, OPT_HEADER},
    {"subprotocol", required_argument, NULL, OPT_SUBPROTOCOL},
    {"origin", required_argument, NULL, OPT_ORIGIN},
    {"binary", no_argument, NULL, OPT_BINARY},
    {"echo", no_argument, NULL, OPT_ECHO},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"no-deflate", no_argument, NULL, OPT_NO_DEFLATE},
    {"wait", required_argument, NULL, OPT_WAIT},
    {"no-close", no_argument, NULL, OPT_NO_CLOSE},
    {"base64", no_argument, NULL, OPT_BASE64},
    {"user-agent", required_argument, NULL, OPT_USER_AGENT},
    {"show-ping", no_argument, NULL, OPT_SHOW_PING},
    {"cert", required_argument, NULL, OPT_CERT},
    {"proxy", required_argument, NULL, OPT_PROXY},
    {"reconnect", no_argument, NULL, OPT_RECONNECT},
    {"key", required_argument, NULL, OPT_KEY},
    {"ping-interval", required_argument, NULL, OPT_PING_INTERVAL},
    CLI_COMMON_LONGOPTS,
};

/* "Name: value": a token, a colon, and a value without line breaks. */
static bool is_header(const char *s)
{
    const char *colon = strchr(s, ':');
    bool is_ok;
    char *name;

    if (!colon || colon == s || strpbrk(s, "\r\n"))
        return false;
    name = strndup(s, (size_t)(colon - s));
    if (!name)
        return false;
    is_ok = cli_is_token(name);
    free(name);
    return is_ok;
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int connect_parse_options(struct connect_options *opt, int argc, char **argv)
{
    int c, rv;

    opt->backend = WSK_BACKEND_DEFAULT;
    opt->max_message = DEFAULT_MAX_MESSAGE;
    opt->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT;
    opt->wait_ms = DEFAULT_WAIT;
    opt->user_agent = "wsk/" WSK_VERSION_STRING;
    opt->has_deflate = true;
    opt->verbosity = CLI_NORMAL;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":vqh", connect_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_HEADER:
            if (!is_header(optarg))
                return cli_usage_error("--header '%s': expected 'Name: value'", optarg);
            if (cli_strv_push(&opt->headers, optarg) < 0)
                return cli_usage_error("out of memory");
            break;
        case OPT_SUBPROTOCOL:
            if ((rv = cli_add_subprotocol(&opt->subprotocols, optarg)) != 0)
                return rv;
            break;
        case OPT_ORIGIN:
            if (!*optarg || has_control_chars(optarg))
                return cli_usage_error("--origin '%s': expected an origin like "
                                       "http://localhost",
                                       optarg);
            opt->origin = optarg;
            break;
        case OPT_BINARY:
            opt->is_binary = true;
            break;
        case OPT_ECHO:
            opt->is_echo = true;
            break;
        case OPT_BACKEND:
            if (wsk_backend_parse(optarg, &opt->backend) < 0)
                return cli_usage_error("--backend '%s': expected epoll, poll, select or io_uring",
                                       optarg);
            break;
        case OPT_MAX_MESSAGE:
            /* A line is kept in memory before it is sent: keep it addressable. */
            if (cli_parse_bytes(optarg, SIZE_MAX / 2, &opt->max_message) < 0)
                return cli_usage_error("--max-message '%s': expected a size like 65536, 64k "
                                       "or 16M",
                                       optarg);
            break;
        case OPT_CONNECT_TIMEOUT:
            if (cli_parse_seconds(optarg, &opt->connect_timeout_ms) < 0 ||
                opt->connect_timeout_ms == 0)
                return cli_usage_error("--connect-timeout '%s': expected positive seconds like "
                                       "10 or 0.5",
                                       optarg);
            break;
        case OPT_CACERT:
            if (!*optarg)
                return cli_usage_error("--cacert needs a file");
            opt->ca_file = optarg;
            break;
        case OPT_INSECURE:
            opt->is_insecure = true;
            break;
        case OPT_NO_DEFLATE:
            opt->has_deflate = false;
            break;
        case OPT_WAIT:
            if (cli_parse_seconds(optarg, &opt->wait_ms) < 0)
                return cli_usage_error("--wait '%s': expected seconds like 1 or 0.5", optarg);
            break;
        case OPT_NO_CLOSE:
            opt->is_no_close = true;
            break;
        case OPT_BASE64:
            opt->is_base64 = true;
            break;
        case OPT_USER_AGENT:
            if (has_control_chars(optarg))
                return cli_usage_error("--user-agent: expected text without control characters");
            opt->user_agent = *optarg ? optarg : NULL;
            break;
        case OPT_SHOW_PING:
            opt->is_show_ping = true;
            break;
        case OPT_RECONNECT:
            opt->is_reconnect = true;
            break;
        case OPT_PROXY:
            if (has_control_chars(optarg))
                return cli_usage_error(
                    "--proxy: expected [SCHEME://][USER[:PASSWORD]@]HOST[:PORT]");
            opt->proxy = optarg;
            opt->has_proxy = true;
            break;
        case OPT_CERT:
        case OPT_KEY:
            if (!*optarg)
                return cli_usage_error("%s needs a file", c == OPT_CERT ? "--cert" : "--key");
            *(c == OPT_CERT ? &opt->cert_file : &opt->key_file) = optarg;
            break;
        case OPT_PING_INTERVAL:
            if (cli_parse_seconds(optarg, &opt->ping_interval_ms) < 0)
                return cli_usage_error("--ping-interval '%s': expected seconds like 20 or 0.5 "
                                       "(0: no pings)",
                                       optarg);
            if (opt->ping_interval_ms == 0)
                opt->ping_interval_ms = UINT32_MAX;
            break;
        case 'h':
            fputs(connect_usage, stdout);
            fputs(connect_usage_more, stdout);
            return -1;
        default:
            if ((rv = cli_common_option(c, argv, connect_usage, connect_longopts, CLI_DEBUG,
                                        &opt->verbosity)) != 0)
                return rv;
            break;
        }
    }
    if (optind >= argc)
        return cli_usage_error("missing the URL to connect to (ws://HOST[:PORT]/PATH, "
                               "tcp://HOST:PORT or udp://HOST:PORT)");
    opt->url = argv[optind++];
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (opt->is_echo && (opt->is_no_close || opt->is_base64))
        return cli_usage_error("%s is for stdin and stdout; --echo uses neither",
                               opt->is_no_close ? "--no-close" : "--base64");
    if (!opt->cert_file != !opt->key_file)
        return cli_usage_error("%s needs %s too", opt->cert_file ? "--cert" : "--key",
                               opt->cert_file ? "--key" : "--cert");
    if (opt->ca_file && opt->is_insecure)
        return cli_usage_error("--cacert and --insecure contradict each other: with --insecure "
                               "nothing is verified");
    return 0;
}
