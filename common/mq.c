#include "mq.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xalloc.h"

#define CHANNEL 1
#define FRAME_MAX 131072

struct mq {
    char *url;
    int timeout_ms;
    amqp_connection_state_t conn; /* NULL when disconnected */
    bool confirming;              /* confirm.select sent on this connection */
    bool consuming;
    uint64_t publish_seq; /* confirm sequence number of the last publish */
    int64_t beat_ms;      /* when mq_keepalive last sent a heartbeat */
    char peer[160];       /* host:port for messages (never the password) */
    int err;
    char errstr[128];
};

/* ---------------------------------------------------------------------------
 * Errors and teardown */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_to_tv(int64_t ms)
{
    if (ms < 0) ms = 0;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static int set_err(mq_t *mq, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int set_err(mq_t *mq, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mq->errstr, sizeof mq->errstr, fmt, ap);
    va_end(ap);
    mq->err = code;
    return code;
}

/* Drops the connection without talking to the broker: used once its state
 * is unknown (socket error, timeout mid-protocol, channel closed by the
 * broker). The broker requeues whatever was unacknowledged. */
static void drop(mq_t *mq)
{
    if (!mq->conn) return;
    amqp_destroy_connection(mq->conn);
    mq->conn = NULL;
    mq->confirming = false;
    mq->consuming = false;
    mq->publish_seq = 0;
}

/* Describes a close method the broker sent (channel.close or connection.close). */
static int server_closed(mq_t *mq, const char *what, amqp_method_t m)
{
    if (m.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *c = m.decoded;
        set_err(mq, PX_EBACKEND, "%s: connection closed by broker: %u %.*s", what,
                (unsigned)c->reply_code, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    } else if (m.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *c = m.decoded;
        set_err(mq, PX_EBACKEND, "%s: channel closed by broker: %u %.*s", what,
                (unsigned)c->reply_code, (int)c->reply_text.len, (const char *)c->reply_text.bytes);
    } else {
        set_err(mq, PX_EBACKEND, "%s: unexpected method 0x%08x from broker", what, (unsigned)m.id);
    }
    drop(mq);
    return PX_EBACKEND;
}

static int status_err(mq_t *mq, const char *what, int status)
{
    int code = status == AMQP_STATUS_TIMEOUT ? PX_ETIMEOUT : PX_EBACKEND;
    set_err(mq, code, "%s: %s", what, amqp_error_string2(status));
    drop(mq);
    return code;
}

/* Checks the reply of the last RPC; on failure describes it and drops the
 * connection (a server exception has closed the channel or connection). */
static int rpc_check(mq_t *mq, const char *what, amqp_rpc_reply_t r)
{
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return 0;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return status_err(mq, what, r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION: return server_closed(mq, what, r.reply);
    case AMQP_RESPONSE_NONE:
    default: break;
    }
    set_err(mq, PX_EBACKEND, "%s: no reply", what);
    drop(mq);
    return PX_EBACKEND;
}

static int need_conn(mq_t *mq, const char *what)
{
    if (mq->conn) return 0;
    if (mq->err == 0) set_err(mq, PX_EPROTO, "%s: not connected", what);
    return PX_EPROTO;
}

/* ---------------------------------------------------------------------------
 * Lifecycle */

mq_t *mq_new(const char *url, int timeout_ms)
{
    mq_t *mq = xcalloc(1, sizeof *mq);
    mq->url = xstrdup(url);
    mq->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    return mq;
}

void mq_free(mq_t *mq)
{
    if (!mq) return;
    mq_disconnect(mq);
    free(mq->url);
    free(mq);
}

bool mq_is_connected(const mq_t *mq)
{
    return mq->conn != NULL;
}

int mq_err(const mq_t *mq)
{
    return mq->err;
}

const char *mq_errstr(const mq_t *mq)
{
    return mq->err ? mq->errstr : "";
}

void mq_disconnect(mq_t *mq)
{
    if (!mq->conn) return;
    /* Polite close; each is an RPC bounded by the rpc timeout. Failures do
     * not matter: the connection is destroyed either way. */
    amqp_rpc_reply_t r = amqp_channel_close(mq->conn, CHANNEL, AMQP_REPLY_SUCCESS);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) amqp_connection_close(mq->conn, AMQP_REPLY_SUCCESS);
    drop(mq);
}

int mq_connect(mq_t *mq)
{
    drop(mq); /* a reconnect does not wait on a connection that may be dead */
    mq->err = 0;
    mq->errstr[0] = '\0';

    /* amqp_parse_url rewrites its argument and points into it. */
    char *u = xstrdup(mq->url);
    struct amqp_connection_info ci;
    amqp_default_connection_info(&ci);
    if (amqp_parse_url(u, &ci) != AMQP_STATUS_OK) {
        free(u);
        return set_err(mq, PX_EPROTO, "rabbitmq url does not parse");
    }
    if (ci.ssl) {
        free(u);
        return set_err(mq, PX_EPROTO, "amqps:// is not supported");
    }
    snprintf(mq->peer, sizeof mq->peer, "%s:%d", ci.host, ci.port);
    const char *vhost = ci.vhost && ci.vhost[0] ? ci.vhost : "/";

    amqp_connection_state_t conn = amqp_new_connection();
    if (!conn) {
        free(u);
        return set_err(mq, -ENOMEM, "amqp_new_connection failed");
    }
    mq->conn = conn;
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    if (!sock) {
        free(u);
        set_err(mq, -ENOMEM, "amqp_tcp_socket_new failed");
        drop(mq);
        return -ENOMEM;
    }
    struct timeval tv = ms_to_tv(mq->timeout_ms);
    int st = amqp_socket_open_noblock(sock, ci.host, ci.port, &tv);
    if (st != AMQP_STATUS_OK) {
        char what[200];
        snprintf(what, sizeof what, "connect %s", mq->peer);
        free(u);
        return status_err(mq, what, st);
    }
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);

    amqp_rpc_reply_t r = amqp_login(conn, vhost, 0, FRAME_MAX, MQ_HEARTBEAT_S,
                                    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    free(u);
    int rc = rpc_check(mq, "login", r);
    if (rc) return rc;
    amqp_channel_open(conn, CHANNEL);
    return rpc_check(mq, "channel.open", amqp_get_rpc_reply(conn));
}

int mq_keepalive(mq_t *mq)
{
    int rc = need_conn(mq, "keepalive");
    if (rc) return rc;
    int64_t now = now_ms();
    if (now - mq->beat_ms < MQ_HEARTBEAT_S * 1000 / 2) return 0;
    amqp_frame_t f;
    memset(&f, 0, sizeof f);
    f.frame_type = AMQP_FRAME_HEARTBEAT;
    f.channel = 0;
    int st = amqp_send_frame(mq->conn, &f);
    if (st != AMQP_STATUS_OK) return status_err(mq, "heartbeat", st);
    mq->beat_ms = now;
    return 0;
}

int mq_ping(const char *url, int timeout_ms)
{
    mq_t *mq = mq_new(url, timeout_ms);
    int rc = mq_connect(mq);
    mq_free(mq);
    return rc;
}

/* ---------------------------------------------------------------------------
 * Topology */

static amqp_table_entry_t entry_str(const char *key, const char *value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = amqp_cstring_bytes(value);
    return e;
}

static amqp_table_entry_t entry_int(const char *key, int32_t value)
{
    amqp_table_entry_t e;
    e.key = amqp_cstring_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_I32;
    e.value.value.i32 = value;
    return e;
}

static int declare_exchange(mq_t *mq, const char *name)
{
    amqp_exchange_declare(mq->conn, CHANNEL, amqp_cstring_bytes(name), amqp_cstring_bytes("direct"),
                          0, 1, 0, 0, amqp_empty_table);
    return rpc_check(mq, "exchange.declare", amqp_get_rpc_reply(mq->conn));
}

static int declare_queue(mq_t *mq, const char *name, amqp_table_t args)
{
    amqp_queue_declare(mq->conn, CHANNEL, amqp_cstring_bytes(name), 0, 1, 0, 0, args);
    return rpc_check(mq, "queue.declare", amqp_get_rpc_reply(mq->conn));
}

static int bind_queue(mq_t *mq, const char *queue, const char *exchange, const char *key)
{
    amqp_queue_bind(mq->conn, CHANNEL, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(key), amqp_empty_table);
    return rpc_check(mq, "queue.bind", amqp_get_rpc_reply(mq->conn));
}

int mq_declare_jobs(mq_t *mq)
{
    int rc = need_conn(mq, "declare");
    if (rc) return rc;

    /* at-least-once dead-lettering makes the broker keep a rejected message
     * in place.jobs until place.jobs.dlq has confirmed it; RabbitMQ only
     * allows it together with overflow reject-publish. */
    amqp_table_entry_t jobs_args[] = {
        entry_str("x-queue-type", "quorum"),
        entry_int("x-delivery-limit", MQ_DELIVERY_LIMIT),
        entry_str("x-dead-letter-exchange", MQ_DLX_EXCHANGE),
        entry_str("x-dead-letter-strategy", "at-least-once"),
        entry_str("x-overflow", "reject-publish"),
    };
    amqp_table_entry_t dlq_args[] = {entry_str("x-queue-type", "quorum")};
    amqp_table_t jobs_table = {.num_entries = (int)(sizeof jobs_args / sizeof jobs_args[0]),
                               .entries = jobs_args};
    amqp_table_t dlq_table = {.num_entries = 1, .entries = dlq_args};

    /* The dead-letter side first, so the main queue never points at a
     * missing exchange. */
    if ((rc = declare_exchange(mq, MQ_DLX_EXCHANGE)) ||
        (rc = declare_queue(mq, MQ_DLQ_QUEUE, dlq_table)) ||
        (rc = bind_queue(mq, MQ_DLQ_QUEUE, MQ_DLX_EXCHANGE, MQ_JOBS_ROUTING_KEY)) ||
        (rc = declare_exchange(mq, MQ_JOBS_EXCHANGE)) ||
        (rc = declare_queue(mq, MQ_JOBS_QUEUE, jobs_table)) ||
        (rc = bind_queue(mq, MQ_JOBS_QUEUE, MQ_JOBS_EXCHANGE, MQ_JOBS_ROUTING_KEY)))
        return rc;
    return 0;
}

/* ---------------------------------------------------------------------------
 * Publishing */

int mq_publish(mq_t *mq, const char *exchange, const char *routing_key, const void *body,
               size_t len, int timeout_ms)
{
    int rc = need_conn(mq, "publish");
    if (rc) return rc;
    if (mq->consuming) return set_err(mq, PX_EPROTO, "publish: this connection consumes");

    if (!mq->confirming) {
        amqp_confirm_select(mq->conn, CHANNEL);
        if ((rc = rpc_check(mq, "confirm.select", amqp_get_rpc_reply(mq->conn)))) return rc;
        mq->confirming = true;
        mq->publish_seq = 0;
    }

    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    amqp_bytes_t b = {.len = len, .bytes = (void *)(uintptr_t)body};
    int st = amqp_basic_publish(mq->conn, CHANNEL, amqp_cstring_bytes(exchange),
                                amqp_cstring_bytes(routing_key), 1, 0, &props, b);
    if (st != AMQP_STATUS_OK) return status_err(mq, "basic.publish", st);
    uint64_t seq = ++mq->publish_seq;

    /* We publish one message at a time, so the confirm we wait for is the
     * one covering `seq`. A basic.return (mandatory, nothing bound) comes
     * before its ack and makes the publish a failure. */
    bool returned = false;
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        amqp_maybe_release_buffers(mq->conn);
        struct timeval tv = ms_to_tv(deadline - now_ms());
        amqp_frame_t f;
        st = amqp_simple_wait_frame_noblock(mq->conn, &f, &tv);
        if (st == AMQP_STATUS_TIMEOUT) {
            set_err(mq, PX_ETIMEOUT, "publish: no confirm within %d ms", timeout_ms);
            drop(mq);
            return PX_ETIMEOUT;
        }
        if (st != AMQP_STATUS_OK) return status_err(mq, "publish: waiting for confirm", st);
        if (f.frame_type != AMQP_FRAME_METHOD) continue;

        switch (f.payload.method.id) {
        case AMQP_BASIC_ACK_METHOD: {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->delivery_tag < seq) continue;
            if (!returned) return 0;
            return set_err(mq, PX_EBACKEND, "publish: unroutable (no queue bound to %s/%s)",
                           exchange, routing_key);
        }
        case AMQP_BASIC_NACK_METHOD: {
            amqp_basic_nack_t *n = f.payload.method.decoded;
            if (n->delivery_tag < seq) continue;
            return set_err(mq, PX_EBACKEND, "publish: broker refused the message (nack)");
        }
        case AMQP_BASIC_RETURN_METHOD: {
            returned = true;
            amqp_message_t msg;
            amqp_rpc_reply_t r = amqp_read_message(mq->conn, CHANNEL, &msg, 0);
            if ((rc = rpc_check(mq, "publish: reading returned message", r))) return rc;
            amqp_destroy_message(&msg);
            continue;
        }
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD: return server_closed(mq, "publish", f.payload.method);
        default: continue;
        }
    }
}

/* ---------------------------------------------------------------------------
 * Consuming */

int mq_consume(mq_t *mq, const char *queue, int prefetch)
{
    int rc = need_conn(mq, "consume");
    if (rc) return rc;
    if (prefetch < 1) prefetch = 1;
    if (prefetch > 65535) prefetch = 65535;
    amqp_basic_qos(mq->conn, CHANNEL, 0, (uint16_t)prefetch, 0);
    if ((rc = rpc_check(mq, "basic.qos", amqp_get_rpc_reply(mq->conn)))) return rc;
    amqp_basic_consume(mq->conn, CHANNEL, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    if ((rc = rpc_check(mq, "basic.consume", amqp_get_rpc_reply(mq->conn)))) return rc;
    mq->consuming = true;
    return 0;
}

static long header_long(const amqp_basic_properties_t *p, const char *key)
{
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return 0;
    size_t klen = strlen(key);
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len != klen || memcmp(e->key.bytes, key, klen) != 0) continue;
        switch (e->value.kind) {
        case AMQP_FIELD_KIND_I8: return e->value.value.i8;
        case AMQP_FIELD_KIND_U8: return e->value.value.u8;
        case AMQP_FIELD_KIND_I16: return e->value.value.i16;
        case AMQP_FIELD_KIND_U16: return e->value.value.u16;
        case AMQP_FIELD_KIND_I32: return e->value.value.i32;
        case AMQP_FIELD_KIND_U32: return (long)e->value.value.u32;
        case AMQP_FIELD_KIND_I64: return (long)e->value.value.i64;
        case AMQP_FIELD_KIND_U64: return (long)e->value.value.u64;
        default: return 0;
        }
    }
    return 0;
}

int mq_next(mq_t *mq, int timeout_ms, mq_delivery_t *out)
{
    memset(out, 0, sizeof *out);
    int rc = need_conn(mq, "next");
    if (rc) return rc;
    if (!mq->consuming) return set_err(mq, PX_EPROTO, "next: not consuming");

    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        amqp_maybe_release_buffers(mq->conn);
        struct timeval tv = ms_to_tv(deadline - now_ms());
        amqp_envelope_t env;
        amqp_rpc_reply_t r = amqp_consume_message(mq->conn, &env, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            out->len = env.message.body.len;
            out->body = xmalloc(out->len + 1);
            if (out->len) memcpy(out->body, env.message.body.bytes, out->len);
            out->body[out->len] = '\0';
            out->tag = env.delivery_tag;
            out->redelivered = env.redelivered != 0;
            out->delivery_count = header_long(&env.message.properties, "x-delivery-count");
            amqp_destroy_envelope(&env);
            return 0;
        }
        if (r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION) return rpc_check(mq, "next", r);
        if (r.library_error == AMQP_STATUS_TIMEOUT) return PX_ETIMEOUT;
        if (r.library_error != AMQP_STATUS_UNEXPECTED_STATE)
            return status_err(mq, "next", r.library_error);

        /* Something other than a delivery is waiting: read it. */
        amqp_frame_t f;
        int st = amqp_simple_wait_frame(mq->conn, &f);
        if (st != AMQP_STATUS_OK) return status_err(mq, "next", st);
        if (f.frame_type != AMQP_FRAME_METHOD) continue;
        switch (f.payload.method.id) {
        case AMQP_BASIC_CANCEL_METHOD:
            set_err(mq, PX_EBACKEND, "next: consumer cancelled by the broker (queue deleted?)");
            drop(mq);
            return PX_EBACKEND;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD: return server_closed(mq, "next", f.payload.method);
        default: break; /* stray acks and the like */
        }
        if (now_ms() >= deadline) return PX_ETIMEOUT;
    }
}

void mq_delivery_deinit(mq_delivery_t *d)
{
    free(d->body);
    memset(d, 0, sizeof *d);
}

int mq_ack(mq_t *mq, uint64_t tag)
{
    int rc = need_conn(mq, "ack");
    if (rc) return rc;
    int st = amqp_basic_ack(mq->conn, CHANNEL, tag, 0);
    return st == AMQP_STATUS_OK ? 0 : status_err(mq, "basic.ack", st);
}

int mq_nack(mq_t *mq, uint64_t tag, bool requeue)
{
    int rc = need_conn(mq, "nack");
    if (rc) return rc;
    int st = amqp_basic_nack(mq->conn, CHANNEL, tag, 0, requeue ? 1 : 0);
    return st == AMQP_STATUS_OK ? 0 : status_err(mq, "basic.nack", st);
}

int mq_reject(mq_t *mq, uint64_t tag)
{
    int rc = need_conn(mq, "reject");
    if (rc) return rc;
    int st = amqp_basic_reject(mq->conn, CHANNEL, tag, 0);
    return st == AMQP_STATUS_OK ? 0 : status_err(mq, "basic.reject", st);
}
