/* hub_internal — shared by hub.c (threads, inbox, subscriber, batches) and
 * ws.c (one WebSocket connection: wslay glue, send queue, messages). Hub
 * thread only unless stated. */
#ifndef PLACE_HUB_INTERNAL_H
#define PLACE_HUB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <wslay/wslay.h>

#include "buf.h"
#include "hub.h"
#include "rds_async.h"
#include "wsframe.h"

/* what epoll data.ptr points at: a struct whose first member is this tag */
enum { HUB_EV_CONN = 1, HUB_EV_WAKE, HUB_EV_TIMER, HUB_EV_REDIS };

/* One server-to-client frame (header + payload), immutable once built and
 * shared by every connection of every hub. refs: atomic. */
#define HUB_MAX_FRAMES 16 /* frames written to a client in one writev */

typedef struct hub_frame {
    _Atomic int refs;
    uint32_t len;
    uint8_t data[];
} hub_frame_t;

/* gives: hub__frame_unref. A text frame (FIN, opcode 1, unmasked) around
 * payload (borrowed). */
hub_frame_t *hub__frame_text(const char *payload, size_t len);
/* Writes the header of such a frame for a len-byte payload into h; returns
 * its size (2, 4 or 10). */
size_t hub__text_header(uint8_t h[10], size_t len);
hub_frame_t *hub__frame_ref(hub_frame_t *f);
void hub__frame_unref(hub_frame_t *f);

/* a send-queue entry: a shared frame or bytes owned by the connection */
typedef struct ws_out {
    hub_frame_t *f;
    uint8_t *own;
    uint32_t len, off, cap;
} ws_out_t;

enum { WS_OPEN = 0, WS_CLOSING, WS_DEAD };

typedef struct hub_thread hub_thread_t;

/* One WebSocket connection. Idle, it costs this struct (248 bytes) and
 * nothing else: the wslay context, the send-queue ring and the handshake's
 * extra bytes exist only while they hold something (see ws.c). Fields are
 * ordered by alignment to keep padding out. */
typedef struct ws_conn {
    int ev_kind; /* HUB_EV_CONN; must stay first */
    int fd;
    hub_thread_t *ht;
    struct ws_conn *prev, *next; /* live list */
    struct ws_conn *reap_next;   /* reap list (after WS_DEAD) */
    struct ws_conn *again_next;  /* read budget used up: read again next round */
    struct ws_conn *held_next;   /* output held during a Redis read (hub.held) */
    /* wslay's event context (about 8.8 kB), NULL while wslay holds no state
     * for us: created on demand by ws.c, freed once it is empty and the
     * client sent nothing for a second */
    wslay_event_context_ptr ws;
    char *extra; /* bytes MHD read past the handshake */
    char *ip_group; /* proto_ip_group of the client while [cooldown] per_ip is on, else NULL */
    ws_out_t *q; /* ring, NULL while empty */
    size_t buffered; /* unsent bytes */
    int64_t last_rx_ms, ping_sent_ms, close_at_ms;
    double tokens;
    int64_t tokens_ms;
    wsframe_t rx; /* where the bytes handed to wslay stand between frames */
    uint32_t round_bytes; /* read this round */
    uint32_t extra_len, extra_off;
    uint32_t qcap, qhead, qlen;
    uint16_t close_code; /* answer the peer's close with this code, not wslay's echo */
    uint16_t inflight;   /* placements waiting for Redis */
    uint8_t state;
    bool on_again;
    bool on_held;
    bool short_read_ends; /* this read: a short read() means drained (no EOF seen) */
    bool drained;         /* the last read() was short: the next would say EAGAIN */
    bool in_wslay;         /* inside wslay_event_recv: defer sending */
    bool peer_gone;        /* read saw EOF or an error */
    bool drop_after_flush; /* slow consumer: close once the close frame is out */
    char user_id[37];
    char session_tag[17]; /* rds_session_tag of the session it was opened with */
} ws_conn_t;

typedef struct hub_in hub_in_t;

struct hub_thread {
    hub_t *hub;
    app_t *app;
    const cfg_t *cfg;
    int idx;
    pthread_t th;
    int epfd;
    struct {
        int ev_kind;
        int fd;
    } wake, timer;
    ws_conn_t *conns; /* live list */
    size_t nconns;
    ws_conn_t *reap;
    ws_conn_t *again;
    rds_async_t place; /* placements (EVALSHA), pipelined */
    rds_async_t sub;   /* hub 0: the canvas:updates subscription */
    /* while Redis replies are handled, messages to clients are queued and the
     * connections listed here, then written once each (4 acks, one write) */
    bool hold_writes;
    ws_conn_t *held;
    bool sub_ever_up;
    /* inbox: any thread -> this hub */
    pthread_mutex_t mu;
    hub_in_t *in_head, *in_tail;
    bool wake_pending;
    /* hub 0: the batch being collected from the subscription */
    buf_t batch;
    size_t batch_n;
    int64_t last_flush_ms;
    _Atomic int64_t bcast_us; /* busy time of this hub's last broadcast job */
    /* broadcast jobs (see hub.c) */
    hub_frame_t **pend; /* frames waiting for the next job, owned refs */
    int npend, cappend;
    hub_frame_t *job[HUB_MAX_FRAMES]; /* the current job's frames, owned refs */
    int njob;
    ws_conn_t *cursor; /* next client of the current job */
    int64_t job_busy_us;
    /* hub 0: heartbeat state */
    int64_t hb_ms;
    uint64_t hb_placed;
    /* time and lifecycle */
    int64_t now_ms;
    int64_t next_sweep_ms;
    bool stopping;
    int64_t stop_deadline_ms;
};

/* Unlinks c from the live list, keeping a broadcast job's cursor valid. */
void hub__unlink_conn(hub_thread_t *ht, ws_conn_t *c);

/* ---- ws.c ---- */

/* takes: c. Registers the connection with ht, queues the welcome, serves
 * the extra bytes. NULL if it could not be set up (c freed, MHD told). */
ws_conn_t *ws_conn_new(hub_thread_t *ht, hub_client_t *c);
void ws_conn_on_event(ws_conn_t *c, uint32_t events);
/* reads (within the round's budget) and handles what arrived */
void ws_conn_read(ws_conn_t *c);
/* Writes the output held for each connection on ht->held. */
void ws_conn_write_held(hub_thread_t *ht);
/* Writes n (<= HUB_MAX_FRAMES) shared frames in order with one syscall;
 * what the socket does not take is queued by reference. borrowed: f. */
void ws_conn_send_frames(ws_conn_t *c, hub_frame_t *const *f, int n);
/* a JSON text message (borrowed) through wslay, then flushed */
void ws_conn_send_text(ws_conn_t *c, const char *s, size_t n);
/* an error message {"type":"error","code","message"} */
void ws_conn_send_error(ws_conn_t *c, const char *code, const char *msg);
/* starts the closing handshake; the connection is killed once it completes
 * or after a grace period */
void ws_conn_close(ws_conn_t *c, uint16_t code, const char *reason);
/* ends the connection now: out of epoll and the live list, MHD told; the
 * memory is freed by ws_conn_reap once no callback refers to it */
void ws_conn_kill(ws_conn_t *c, const char *why);
/* true when freed (no placements in flight any more) */
bool ws_conn_reap(ws_conn_t *c);
/* heartbeats and deadlines, once a second */
void ws_conn_sweep(ws_conn_t *c, int64_t now_ms);

#endif
