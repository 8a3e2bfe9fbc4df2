/* hub — the WebSocket side of place-api: N hub threads, each with its own
 * epoll set, WebSocket connections (wslay), an async Redis connection for
 * placements and a timerfd; hub 0 also holds the instance's one pub/sub
 * subscription to canvas:updates and hands every batch of updates to all
 * hubs as one immutable, reference-counted frame.
 *
 * The only ways into a hub are hub_adopt (from the MHD upgrade callback)
 * and hub_stop (from the main thread); both post to the hub's inbox (mutex
 * + eventfd). Nothing on a hub thread blocks. */
#ifndef PLACE_HUB_H
#define PLACE_HUB_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "app.h"
#include "proto.h"

typedef struct hub hub_t;

/* A freshly upgraded connection, handed to hub_adopt. */
typedef struct hub_client {
    int fd; /* the upgraded socket: our own descriptor (hub_client_free closes it) */
    char user_id[37];
    char session_tag[17]; /* rds_session_tag of the session */
    /* proto_ip_group of the client; "" when none or [cooldown] per_ip is off */
    char ip_group[PROTO_IP_GROUP_LEN];
    char *welcome;    /* the welcome message (JSON text), owned */
    size_t welcome_len;
    char *extra;      /* bytes MHD read past the handshake, owned, may be NULL */
    size_t extra_len;
} hub_client_t;

/* gives: hub_stop. Starts cfg->ws.threads hub threads (0 = one per core).
 * NULL on error (logged). */
hub_t *hub_start(app_t *app);

/* takes: c (and its buffers). Any thread. Hands the connection to a hub
 * (round-robin), which sends the welcome message first. */
void hub_adopt(hub_t *h, hub_client_t *c);

/* Frees c and its buffers without adopting it (closes nothing). */
void hub_client_free(hub_client_t *c);

/* Main thread. Sends close 1001 to every client (after its in-flight
 * placements are answered), waits for them to finish (bounded), ends each
 * upgraded connection with MHD, joins the threads and frees h. Must run
 * before MHD is stopped. NULL is a no-op. */
void hub_stop(hub_t *h);

#endif
