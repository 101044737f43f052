/* Private to src/ws: a client connection's state until its handshake is
 * done (client.c), and the proxy tunnel before it (client_proxy.c). */
#ifndef WSK_WS_CLIENT_INTERNAL_H
#define WSK_WS_CLIENT_INTERNAL_H

#include <netdb.h>
#include <sys/socket.h>

#include "proto/proxy_internal.h"
#include "ws/ws_internal.h"

/* Where a connection through a proxy is. */
enum wsk__proxy_step {
    WSK__PROXY_NONE = 0,     /* direct, or the tunnel is up */
    WSK__PROXY_HTTP_HEAD,    /* CONNECT sent, reading the answer's head */
    WSK__PROXY_SOCKS_METHOD, /* greeting sent, reading the method chosen */
    WSK__PROXY_SOCKS_AUTH,   /* username/password sent, reading the status */
    WSK__PROXY_SOCKS_REPLY,  /* CONNECT sent, reading the reply */
};

struct wsk__client_hs {
    char host[256]; /* name or address, without brackets */
    char port[8];
    char *host_header; /* "name:port" or "[v6]:port" */
    char *target;      /* path and query */
    char key[25];
    char **subprotocols;
    size_t num_subprotocols;
    char *request;
    size_t request_len;
    struct wsk_http_parser parser;
    struct addrinfo *addrs; /* from getaddrinfo, or one numeric address */
    struct addrinfo *next_addr;
    struct wsk__resolve *job; /* resolving a name */
    int last_error;
    bool is_tls;
    struct wsk_deflate_config deflate; /* what we offered */
    bool in_connect_call;              /* inside wsk_client_connect(): report failures later */
    /* Through a proxy (client_proxy.c): NULL for a direct connection. */
    struct wsk__proxy *proxy;
    enum wsk__proxy_step proxy_step;
    struct sockaddr_storage target_addr; /* socks5://: the target, resolved here */
};

/* client.c, for client_proxy.c: fails the connection (after
 * wsk_client_connect() has returned); sends the WebSocket request, or
 * starts TLS first for wss://, once the socket reaches the server. */
void wsk__client_fail(struct wsk_conn *c, int error);
void wsk__client_start_handshake(struct wsk_conn *c);

/* client_proxy.c. Parses spec (cfg->proxy) into hs->proxy. Returns 0;
 * WSK_EURL for a bad setting (why goes to ctx's log); -ENOMEM. */
int wsk__client_proxy_init(struct wsk__ctx *ctx, struct wsk__client_hs *hs, const char *spec);
/* The socket reached the proxy: asks for the tunnel. */
void wsk__client_proxy_start(struct wsk_conn *c);
/* Bytes read while hs->proxy_step is set. */
void wsk__client_proxy_on_data(struct wsk_conn *c, const uint8_t *data, size_t len);

#endif
