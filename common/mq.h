/* mq — thin librabbitmq (rabbitmq-c 0.11) wrapper for the job queue.
 *
 * An mq_t is one AMQP connection with one channel. It carries a sticky error
 * (mq_err / mq_errstr) describing the last failure; nothing here logs. After
 * any failure other than a PX_ETIMEOUT from mq_next() the connection has been
 * dropped (mq_is_connected() turns false) and the caller reconnects with
 * mq_connect() on the same handle. Every network call is bounded by the
 * timeout given to mq_new() (connect, login, RPCs) or by its own argument.
 * Heartbeats (MQ_HEARTBEAT_S) are serviced while waiting in mq_next() and
 * mq_publish(); a caller that works longer than about 2 * MQ_HEARTBEAT_S
 * between calls loses the connection (and its unacknowledged deliveries are
 * redelivered).
 *
 * Threads: an mq_t is used by one thread at a time; different mq_t are
 * independent. One mq_t either publishes or consumes (publisher confirms
 * are read from the same channel as deliveries).
 *
 * Topology (mq_declare_jobs, idempotent):
 *   exchange place.jobs      direct, durable
 *   queue    place.jobs      durable quorum queue, bound with key "job";
 *                            x-delivery-limit 5, x-dead-letter-exchange
 *                            place.jobs.dlx, x-dead-letter-strategy
 *                            at-least-once, x-overflow reject-publish
 *   exchange place.jobs.dlx  direct, durable
 *   queue    place.jobs.dlq  durable quorum queue, bound with key "job"
 * A message that is rejected (mq_reject) or nacked with requeue more than
 * MQ_DELIVERY_LIMIT times is moved to place.jobs.dlq. */
#ifndef PLACE_MQ_H
#define PLACE_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px.h"

#define MQ_JOBS_EXCHANGE "place.jobs"
#define MQ_JOBS_QUEUE "place.jobs"
#define MQ_JOBS_ROUTING_KEY "job"
#define MQ_DLX_EXCHANGE "place.jobs.dlx"
#define MQ_DLQ_QUEUE "place.jobs.dlq"
#define MQ_DELIVERY_LIMIT 5
#define MQ_HEARTBEAT_S 30

typedef struct mq mq_t;

/* One message handed out by mq_next(). */
typedef struct mq_delivery {
    uint8_t *body; /* gives: mq_delivery_deinit(); NUL-terminated past len */
    size_t len;
    uint64_t tag;        /* for mq_ack / mq_nack / mq_reject on the same connection */
    bool redelivered;    /* the broker delivered it before */
    long delivery_count; /* quorum queue's x-delivery-count header, 0 if absent */
} mq_delivery_t;

/* A handle for the broker at `url` (borrowed, copied): amqp://user:pass@host:port/vhost
 * (an empty vhost, as in "amqp://h:5672/", means "/"). timeout_ms (> 0) bounds
 * the TCP connect, the login handshake and every RPC. Does not connect.
 * Returns the handle (gives: mq_free()); never NULL (aborts on OOM). */
mq_t *mq_new(const char *url, int timeout_ms);

/* Closes the connection if open (politely when it is healthy) and frees.
 * mq_free(NULL) is a no-op. */
void mq_free(mq_t *mq);

/* (Re)connects: drops any current connection, opens TCP, logs in, opens the
 * channel. Clears the sticky error on success.
 * Returns 0; PX_EPROTO the URL does not parse (or is amqps://);
 * PX_ETIMEOUT connect or login timed out; PX_EBACKEND anything else
 * (refused, bad credentials, unknown vhost...). Details in mq_errstr(). */
PX_MUST_CHECK int mq_connect(mq_t *mq);

/* Closes the connection (politely when healthy). The handle stays usable
 * for mq_connect(). Unacknowledged deliveries go back to the queue. */
void mq_disconnect(mq_t *mq);

bool mq_is_connected(const mq_t *mq);

/* Last error code (0 if none since the last successful mq_connect) and its
 * description (borrowed, valid until the next call on mq; never NULL). The
 * description never contains the URL's password. */
int mq_err(const mq_t *mq);
const char *mq_errstr(const mq_t *mq);

/* Declares the job topology described above; safe to repeat and to race
 * with other processes. Returns 0, PX_EBACKEND (e.g. an existing queue with
 * other arguments: PRECONDITION_FAILED in mq_errstr()), PX_ETIMEOUT, or
 * PX_EPROTO when not connected. */
PX_MUST_CHECK int mq_declare_jobs(mq_t *mq);

/* Publishes body (borrowed, len bytes) to `exchange` with `routing_key`
 * (both borrowed) as a persistent (delivery_mode 2) application/json message
 * with the mandatory flag, and waits up to timeout_ms for the broker's
 * publisher confirm (confirm.select is sent once per connection).
 * Returns 0 once the broker has acked (the message is in a queue on disk /
 * in the quorum log); PX_EBACKEND on a nack, an unroutable message
 * (basic.return: no queue bound) or a connection failure; PX_ETIMEOUT when
 * no confirm came in time (the message may or may not have been taken: the
 * connection is dropped); PX_EPROTO when not connected or when this mq_t
 * consumes. */
PX_MUST_CHECK int mq_publish(mq_t *mq, const char *exchange, const char *routing_key,
                             const void *body, size_t len, int timeout_ms);

/* Starts consuming `queue` (borrowed) with manual acknowledgements and at
 * most `prefetch` (>= 1) unacknowledged deliveries (basic.qos).
 * Returns 0, PX_EBACKEND (e.g. no such queue), PX_ETIMEOUT, PX_EPROTO when
 * not connected. */
PX_MUST_CHECK int mq_consume(mq_t *mq, const char *queue, int prefetch);

/* Waits up to timeout_ms (>= 0) for the next delivery. Returns 0 and fills
 * *out (out; release with mq_delivery_deinit()); PX_ETIMEOUT when nothing
 * came (not an error: the connection is fine and the sticky error is left
 * alone); PX_EBACKEND when the connection or channel was lost or the broker
 * cancelled the consumer; PX_EPROTO when not consuming. On error *out is
 * zeroed. */
PX_MUST_CHECK int mq_next(mq_t *mq, int timeout_ms, mq_delivery_t *out);

/* Frees the body and zeroes *d. Safe on a zeroed delivery. */
void mq_delivery_deinit(mq_delivery_t *d);

/* Settle one delivery by its tag (from mq_next on the current connection;
 * tags die with the connection, and a delivery of a lost connection is
 * redelivered by the broker instead).
 * mq_ack:    done, remove it.
 * mq_nack:   failed; requeue = true puts it back (counts towards
 *            MQ_DELIVERY_LIMIT), false dead-letters it.
 * mq_reject: refuse it for good: dead-lettered to place.jobs.dlq.
 * Returns 0, PX_EBACKEND when the connection failed, PX_EPROTO when not
 * connected. */
PX_MUST_CHECK int mq_ack(mq_t *mq, uint64_t tag);
PX_MUST_CHECK int mq_nack(mq_t *mq, uint64_t tag, bool requeue);
PX_MUST_CHECK int mq_reject(mq_t *mq, uint64_t tag);

/* For a caller busy with a long job between mq_next() calls: sends a
 * heartbeat frame when the last one went out more than MQ_HEARTBEAT_S / 2
 * seconds ago, so the broker keeps the connection (and the unacknowledged
 * delivery) however long the job takes. Cheap enough to call often.
 * Returns 0, PX_EBACKEND when the connection failed (dropped), PX_EPROTO
 * when not connected. */
PX_MUST_CHECK int mq_keepalive(mq_t *mq);

/* Connects to `url` (borrowed), logs in and closes, all within about
 * timeout_ms. For readiness probes; any thread (uses its own connection).
 * Returns 0 or the code mq_connect() would. */
PX_MUST_CHECK int mq_ping(const char *url, int timeout_ms);

#endif
