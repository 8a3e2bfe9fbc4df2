/* epwriter — the bare C epoll "ceiling" for the WebSocket fan-out benchmark.
 *
 * The api writes one broadcast frame per client per tick: one write/writev
 * per client per tick, from epoll hub threads, to non-blocking loopback
 * sockets. This program does only that, with nothing else in the way, so
 * that the api's "frames written per server CPU-second" can be compared with
 * what a minimal epoll server reaches on the same machine with the same
 * number of sockets and the same frame size.
 *
 *   epwriter --clients N --frame-bytes B --duration S [--tick-ms T]
 *            [--threads K] [--sources M] [--reader-poll-ms P] [--json FILE]
 *
 * Shape: the parent (the "server") listens on 127.0.0.1 on a port chosen by
 * bind(port 0), then forks a reader child (the "clients") that opens N TCP
 * connections to it, binding them round-robin to 127.0.0.1 .. 127.0.0.M
 * (--sources; loopback has about 28,000 ephemeral ports per source address),
 * and reads and discards everything with a level-triggered epoll loop and a
 * large read buffer until it is killed (with --reader-poll-ms P, as
 * loadgen's passive viewers read: it wakes every 1 ms and reads its share
 * of the ready sockets, so each is read about every P ms). The parent
 * accepts the N connections (non-blocking, TCP_NODELAY like a WebSocket
 * server) and deals them to K writer threads (connection i to thread
 * i % K), each with its own epoll.
 *
 * For S seconds each thread then writes rounds: one B-byte frame (an
 * unmasked WebSocket text frame: header + payload, B bytes in all) to each of
 * its sockets with one write() each. T = 0 (the default) means back-to-back
 * rounds as fast as possible; T > 0 means one round every T ms (a periodic
 * timerfd in the thread's epoll; ticks missed because a round ran late are
 * counted, not caught up). A write that would block or is partial queues the
 * rest of the frame, which is written on EPOLLOUT (edge-triggered) like a
 * real server does; a socket with a queued remainder is skipped for new
 * frames until it has drained (counted as skipped).
 *
 * Measured over the window only (sampled just before the threads are
 * released and just after they are joined): frames written (fully written or
 * queued), bytes, write() calls, wall seconds, the server's CPU seconds
 * (getrusage RUSAGE_SELF user + sys, i.e. every thread) and the reader
 * child's CPU seconds (/proc/PID/stat utime + stime; RUSAGE_CHILDREN only
 * counts children that have been waited for). Printed, and with --json FILE
 * also written as one JSON object.
 *
 * Limits: S <= 120, N <= 60000, loopback only. RLIMIT_NOFILE is raised to
 * the hard limit before the fork (so in both processes); the run refuses to
 * start if N + 64 descriptors do not fit. The child gets SIGKILL when the
 * parent dies (PR_SET_PDEATHSIG) and is killed and reaped at the end, on
 * error paths too. Exit status: 0 done, 1 failed (with a message), 2 bad
 * options. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define MAX_CLIENTS 60000
#define MAX_DURATION_S 120.0
#define MAX_TICK_MS 10000
#define MAX_THREADS 64
#define MAX_SOURCES 250
#define MAX_FRAME_BYTES (1024 * 1024)
#define FD_MARGIN 64                /* descriptors beyond N: listen, epoll, timerfd, stdio, ... */
#define MAX_EVENTS 1024             /* epoll_wait batch, writer and reader */
#define READ_BUF_SIZE (256 * 1024)  /* the reader's one read buffer */
#define CONNECT_TIMEOUT_NS (60 * NS_PER_S)
#define ACCEPT_POLL_MS 200
#define TIMER_TAG UINT32_MAX        /* epoll data of a writer's timerfd */

/* ------------------------------------------------------------------ types */

struct opts {
    int clients;
    int frame_bytes;
    double duration_s;
    int tick_ms;
    int threads;
    int sources;
    int reader_poll_ms; /* 0: read on readiness; M: as loadgen's passive viewers */
    const char *json;
};

/* One accepted socket. left > 0: that many bytes of the current frame are
 * queued (not yet accepted by the kernel); new frames are skipped until 0. */
struct conn {
    int fd;
    int left;
};

struct stats {
    uint64_t frames;       /* frames fully written or queued */
    uint64_t queued;       /* of those, frames whose write blocked or was partial */
    uint64_t drained;      /* queued frames finished on EPOLLOUT */
    uint64_t skipped;      /* frames not offered: the socket still had a remainder */
    uint64_t bytes;        /* bytes accepted by write() */
    uint64_t writes;       /* write() calls */
    uint64_t rounds;       /* rounds over the thread's sockets */
    uint64_t ticks_missed; /* timer expirations beyond one per wake-up (T > 0) */
    uint64_t failed;       /* sockets that failed (EPIPE, ECONNRESET, ...) */
};

/* The start gate: the writers wait until go != 0 (1: run until deadline_ns,
 * -1: give up), set by the main thread under mu. */
struct shared {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;
    int64_t deadline_ns;
};

struct worker {
    int epfd;
    int tfd;
    struct conn *conns;
    size_t nconns;
    const unsigned char *frame;
    int frame_bytes;
    int tick_ms;
    struct shared *sh;
    struct stats st;
    int first_errno;       /* errno of the first socket failure */
    char err[160];         /* fatal error of the thread itself, "" if none */
    pthread_t tid;
};

struct cpu {
    double user_s;
    double sys_s;
};

struct result {
    struct stats st;
    double wall_s;
    struct cpu server;
    struct cpu reader;
    uint64_t pending_at_end;
    uint64_t rounds_min;
    uint64_t rounds_max;
    double connect_s;
};

/* Set by SIGINT/SIGTERM/SIGHUP: the writers stop at their next round and the
 * run ends through the normal clean-up (child killed and reaped). */
static atomic_int g_stop;

/* ------------------------------------------------------------------ small helpers */

static void on_stop_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
}

static bool stopping(void)
{
    return atomic_load_explicit(&g_stop, memory_order_relaxed) != 0;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("epwriter: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        /* cannot happen with CLOCK_MONOTONIC; make it loud if it does */
        perror("epwriter: clock_gettime");
        abort();
    }
    return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

static void close_fd(int *fd)
{
    if (*fd < 0)
        return;
    if (close(*fd) != 0)
        fprintf(stderr, "epwriter: close(%d): %s\n", *fd, strerror(errno));
    *fd = -1;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double per_s(double n, double s)
{
    return s > 0 ? n / s : 0;
}

/* ------------------------------------------------------------------ options */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: epwriter --clients N --frame-bytes B --duration S [--tick-ms T]\n"
            "                [--threads K] [--sources M] [--reader-poll-ms P] [--json FILE]\n"
            "  --clients N      loopback TCP connections, 1..%d\n"
            "  --frame-bytes B  bytes per frame, WebSocket header included, 2..%d\n"
            "  --duration S     seconds of writing, 0 < S <= %.0f\n"
            "  --tick-ms T      0 (default): back-to-back rounds; T > 0: one round every T ms (<= %d)\n"
            "  --threads K      writer threads, each with its own epoll, 1..%d (default 1)\n"
            "  --sources M      bind clients to 127.0.0.1 .. 127.0.0.M round-robin, 1..%d (default 1)\n"
            "  --reader-poll-ms P  0 (default): the reader reads a socket when it is readable;\n"
            "                   P > 0: it wakes every 1 ms and reads its share of the ready\n"
            "                   sockets, each about every P ms (as loadgen's passive\n"
            "                   viewers), <= %d\n"
            "  --json FILE      also write the figures as one JSON object\n",
            MAX_CLIENTS, MAX_FRAME_BYTES, MAX_DURATION_S, MAX_TICK_MS, MAX_THREADS, MAX_SOURCES,
            MAX_TICK_MS);
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > MAX_DURATION_S)
        return false;
    *out = v;
    return true;
}

/* 0 to run, 2 on bad options, -1 after --help (exit 0). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"clients", required_argument, NULL, 'n'},  {"frame-bytes", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'}, {"tick-ms", required_argument, NULL, 't'},
        {"threads", required_argument, NULL, 'k'},  {"sources", required_argument, NULL, 'm'},
        {"json", required_argument, NULL, 'j'},     {"help", no_argument, NULL, 'h'},
        {"reader-poll-ms", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct opts){.clients = 0, .frame_bytes = 0, .duration_s = 0, .threads = 1, .sources = 1};
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", longopts, &li)) != -1) {
        bool ok = true;
        switch (c) {
        case 'n': ok = parse_int(optarg, 1, MAX_CLIENTS, &o->clients); break;
        case 'b': ok = parse_int(optarg, 2, MAX_FRAME_BYTES, &o->frame_bytes); break;
        case 'd': ok = parse_seconds(optarg, &o->duration_s); break;
        case 't': ok = parse_int(optarg, 0, MAX_TICK_MS, &o->tick_ms); break;
        case 'k': ok = parse_int(optarg, 1, MAX_THREADS, &o->threads); break;
        case 'm': ok = parse_int(optarg, 1, MAX_SOURCES, &o->sources); break;
        case 'j': o->json = optarg; break;
        case 'r': ok = parse_int(optarg, 0, MAX_TICK_MS, &o->reader_poll_ms); break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
        if (!ok) {
            fail("bad value for --%s: '%s'", longopts[li].name, optarg);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fail("unexpected argument '%s'", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (o->clients == 0 || o->frame_bytes == 0 || o->duration_s == 0) {
        fail("--clients, --frame-bytes and --duration are required");
        usage(stderr);
        return 2;
    }
    if (o->threads > o->clients) {
        fail("--threads %d is more than --clients %d", o->threads, o->clients);
        return 2;
    }
    return 0;
}

/* ------------------------------------------------------------------ set-up */

/* Raise the soft open-file limit to the hard limit (inherited by the child
 * forked later) and check that need descriptors fit. */
static bool raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fail("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return false;
    }
    if (rl.rlim_cur != rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            fail("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max,
                 strerror(errno));
            return false;
        }
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        fail("the open-file limit is %llu (hard limit), but --clients needs %llu (clients + %d); "
             "lower --clients or raise the hard limit (ulimit -Hn)",
             (unsigned long long)rl.rlim_cur, (unsigned long long)need, FD_MARGIN);
        return false;
    }
    return true;
}

/* One unmasked WebSocket text frame of exactly len bytes (FIN, opcode 1).
 * The payload is a small JSON object padded with 'x'. For len 128 and 129 the
 * 16-bit length form holds a payload of 124/125 bytes, which RFC 6455 would
 * send with the 7-bit form: a size that cannot be hit exactly otherwise. */
static unsigned char *make_frame(int len)
{
    unsigned char *f = malloc((size_t)len);
    if (!f) {
        fail("out of memory for a %d-byte frame", len);
        return NULL;
    }
    size_t hdr, plen;
    f[0] = 0x81;
    if (len - 2 <= 125) {
        hdr = 2;
        plen = (size_t)len - 2;
        f[1] = (unsigned char)plen;
    } else if (len - 4 <= 65535) {
        hdr = 4;
        plen = (size_t)len - 4;
        f[1] = 126;
        f[2] = (unsigned char)(plen >> 8);
        f[3] = (unsigned char)plen;
    } else {
        hdr = 10;
        plen = (size_t)len - 10;
        f[1] = 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)((uint64_t)plen >> (56 - 8 * i));
    }
    unsigned char *p = f + hdr;
    memset(p, 'x', plen);
    static const char head[] = "{\"type\":\"bench\",\"pad\":\"";
    static const char tail[] = "\"}";
    if (plen >= sizeof head - 1 + sizeof tail - 1) {
        memcpy(p, head, sizeof head - 1);
        memcpy(p + plen - (sizeof tail - 1), tail, sizeof tail - 1);
    }
    return f;
}

/* Listening socket on 127.0.0.1, port chosen by the kernel. */
static int listen_loopback(int backlog, struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail("socket: %s", strerror(errno));
        return -1;
    }
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = 0;
    socklen_t alen = sizeof *addr;
    if (bind(fd, (struct sockaddr *)addr, sizeof *addr) != 0 ||
        listen(fd, backlog) != 0 || getsockname(fd, (struct sockaddr *)addr, &alen) != 0) {
        fail("listen on 127.0.0.1: %s", strerror(errno));
        close_fd(&fd);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------------ the reader child */

/* One client socket connected to the server, bound to 127.0.0.src when
 * sources > 1. Blocking connect (loopback completes it at once), then
 * non-blocking for the read loop. -1 with a message on failure. */
static int reader_connect(const struct sockaddr_in *srv, int src, int sources, int i)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail("reader: socket (client %d): %s", i, strerror(errno));
        return -1;
    }
    if (sources > 1) {
        int one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK + (uint32_t)src);
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0 ||
            bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            fail("reader: bind 127.0.0.%d (client %d): %s", 1 + src, i, strerror(errno));
            close_fd(&fd);
            return -1;
        }
    }
    if (connect(fd, (const struct sockaddr *)srv, sizeof *srv) != 0) {
        int e = errno;
        if (e == EADDRNOTAVAIL)
            fail("reader: out of ephemeral ports after %d connections (%s); use --sources", i,
                 strerror(e));
        else
            fail("reader: connect (client %d): %s", i, strerror(e));
        close_fd(&fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        fail("reader: fcntl O_NONBLOCK: %s", strerror(errno));
        close_fd(&fd);
        return -1;
    }
    return fd;
}

/* Read and discard from every ready socket, level-triggered, one read per
 * event, until every socket has closed (or the parent kills us). With
 * poll_ms > 0 the reader behaves like loadgen's passive viewers instead,
 * which the api's fan-out figure is measured against: it wakes every 1 ms
 * (a periodic timer, not the sockets) and reads as many ready sockets, oldest
 * ready first, as makes each socket read about every poll_ms. */
static int reader_loop(int ep, int *fds, int n, int poll_ms)
{
    unsigned char *buf = malloc(READ_BUF_SIZE);
    struct epoll_event *evs = calloc(MAX_EVENTS, sizeof *evs);
    int tfd = -1, tep = -1, rc = 1;
    if (!buf || !evs) {
        fail("reader: out of memory");
        goto out;
    }
    if (poll_ms > 0) { /* the timer gets an epoll of its own; ep is only polled */
        struct itimerspec its = {{0, NS_PER_MS}, {0, NS_PER_MS}};
        struct epoll_event te = {.events = EPOLLIN};
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        tep = epoll_create1(EPOLL_CLOEXEC);
        if (tfd < 0 || tep < 0 || timerfd_settime(tfd, 0, &its, NULL) != 0 ||
            epoll_ctl(tep, EPOLL_CTL_ADD, tfd, &te) != 0) {
            fail("reader: timer: %s", strerror(errno));
            goto out;
        }
    }
    int64_t last_poll = mono_ns();
    double credit = 0; /* sockets it may read now (poll_ms > 0) */
    int open_n = n;
    while (open_n > 0) {
        int k;
        if (poll_ms > 0) {
            struct epoll_event one;
            uint64_t ticks;
            if (epoll_wait(tep, &one, 1, 100) > 0 && read(tfd, &ticks, sizeof ticks) < 0) {
                /* EAGAIN: nothing to drain */
            }
            int64_t now = mono_ns();
            credit += (double)open_n * (double)(now - last_poll) / ((double)poll_ms * NS_PER_MS);
            last_poll = now;
            if (credit > open_n) credit = open_n;
            int want = (int)credit;
            if (want < 1) continue;
            if (want > MAX_EVENTS) want = MAX_EVENTS;
            credit -= want; /* credit not used (fewer ready) is not kept */
            k = epoll_wait(ep, evs, want, 0);
        } else {
            k = epoll_wait(ep, evs, MAX_EVENTS, -1);
        }
        if (k < 0) {
            if (errno == EINTR)
                continue;
            fail("reader: epoll_wait: %s", strerror(errno));
            goto out;
        }
        for (int e = 0; e < k; e++) {
            uint32_t i = evs[e].data.u32;
            ssize_t r = read(fds[i], buf, READ_BUF_SIZE);
            if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
                continue;
            /* EOF or error: the server went away; stop watching it */
            if (epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL) != 0)
                fail("reader: epoll_ctl DEL: %s", strerror(errno));
            close_fd(&fds[i]);
            open_n--;
        }
    }
    rc = 0;
out:
    if (tep >= 0) close(tep);
    if (tfd >= 0) close(tfd);
    free(evs);
    free(buf);
    return rc;
}

/* The child's whole life: connect N clients, then read until killed. Never
 * returns; exits 0 if every socket closed, 1 on failure. */
static void reader_main(const struct opts *o, const struct sockaddr_in *srv, pid_t parent)
{
    /* die with the parent, whatever kills it */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        fail("reader: prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
        _exit(1);
    }
    if (getppid() != parent)
        _exit(1);
    /* Ctrl-C reaches the whole process group: leave it to the parent, which
     * stops cleanly and kills us; TERM and HUP act as usual */
    struct sigaction ign = {.sa_handler = SIG_IGN}, dfl = {.sa_handler = SIG_DFL};
    if (sigemptyset(&ign.sa_mask) != 0 || sigemptyset(&dfl.sa_mask) != 0 ||
        sigaction(SIGINT, &ign, NULL) != 0 || sigaction(SIGTERM, &dfl, NULL) != 0 ||
        sigaction(SIGHUP, &dfl, NULL) != 0) {
        fail("reader: sigaction: %s", strerror(errno));
        _exit(1);
    }
    int rc = 1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int *fds = malloc((size_t)o->clients * sizeof *fds);
    int n = 0;
    if (ep < 0 || !fds) {
        fail("reader: %s", ep < 0 ? strerror(errno) : "out of memory");
        goto out;
    }
    for (; n < o->clients; n++) {
        int fd = reader_connect(srv, n % o->sources, o->sources, n);
        if (fd < 0)
            goto out;
        fds[n] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)n};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            fail("reader: epoll_ctl ADD: %s", strerror(errno));
            n++;
            goto out;
        }
    }
    rc = reader_loop(ep, fds, n, o->reader_poll_ms);
out:
    if (fds)
        for (int i = 0; i < n; i++)
            close_fd(&fds[i]);
    free(fds);
    close_fd(&ep);
    fflush(stderr);
    _exit(rc);
}

/* ------------------------------------------------------------------ the child, seen from the parent */

/* utime + stime of a running process from /proc/PID/stat (fields 14, 15). */
static bool proc_cpu(pid_t pid, struct cpu *out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) {
        fail("open %s: %s", path, strerror(errno));
        return false;
    }
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    bool rerr = ferror(f) != 0;
    if (fclose(f) != 0 || rerr || len == 0) {
        fail("read %s failed", path);
        return false;
    }
    buf[len] = '\0';
    /* comm may hold spaces and parentheses: fields restart after the last ')' */
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        fail("cannot parse %s", path);
        return false;
    }
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0) {
        fail("sysconf(_SC_CLK_TCK) failed");
        return false;
    }
    out->user_s = (double)ut / (double)hz;
    out->sys_s = (double)st / (double)hz;
    return true;
}

/* true if the child has exited (it is then reaped and *pid set to 0) */
static bool child_gone(pid_t *pid, int *status)
{
    pid_t r = waitpid(*pid, status, WNOHANG);
    if (r == 0)
        return false;
    if (r < 0)
        fail("waitpid(%d): %s", (int)*pid, strerror(errno));
    *pid = 0;
    return true;
}

static void describe_exit(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "signal %d", WTERMSIG(status));
    else
        snprintf(buf, size, "status 0x%x", (unsigned)status);
}

static void kill_child(pid_t *pid)
{
    if (*pid <= 0)
        return;
    if (kill(*pid, SIGKILL) != 0 && errno != ESRCH)
        fail("kill(%d): %s", (int)*pid, strerror(errno));
    int status;
    while (waitpid(*pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fail("waitpid(%d): %s", (int)*pid, strerror(errno));
            break;
        }
    }
    *pid = 0;
}

/* ------------------------------------------------------------------ the writer threads */

/* Stop using a socket: it failed (the reader should never close first). */
static void conn_fail(struct worker *w, struct conn *c, int err)
{
    if (w->st.failed++ == 0)
        w->first_errno = err;
    close_fd(&c->fd); /* closing also removes it from the epoll set */
    c->left = 0;
}

/* Write the queued remainder until done or EAGAIN (edge-triggered EPOLLOUT). */
static void conn_drain(struct worker *w, struct conn *c)
{
    if (c->fd < 0 || c->left == 0)
        return; /* the edge from registration, or space we did not ask for */
    while (c->left > 0) {
        const unsigned char *p = w->frame + (w->frame_bytes - c->left);
        ssize_t n = write(c->fd, p, (size_t)c->left);
        w->st.writes++;
        if (n > 0) {
            c->left -= (int)n;
            w->st.bytes += (uint64_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            conn_fail(w, c, n < 0 ? errno : EIO);
            return;
        }
    }
    w->st.drained++;
}

/* One frame to every socket of the thread: one write() each. Returns how
 * many sockets were offered a frame (0: all of them still have a remainder). */
static size_t write_round(struct worker *w)
{
    const size_t len = (size_t)w->frame_bytes;
    size_t offered = 0;
    for (size_t i = 0; i < w->nconns; i++) {
        struct conn *c = &w->conns[i];
        if (c->fd < 0)
            continue;
        if (c->left > 0) {
            w->st.skipped++;
            continue;
        }
        offered++;
        ssize_t n;
        do {
            n = write(c->fd, w->frame, len);
            w->st.writes++;
        } while (n < 0 && errno == EINTR);
        if (n == (ssize_t)len) {
            w->st.frames++;
            w->st.bytes += len;
        } else if (n >= 0 || errno == EAGAIN || errno == EWOULDBLOCK) {
            int done = n > 0 ? (int)n : 0;
            c->left = w->frame_bytes - done;
            w->st.bytes += (uint64_t)done;
            w->st.frames++;
            w->st.queued++;
        } else {
            conn_fail(w, c, errno);
        }
    }
    w->st.rounds++;
    return offered;
}

/* Handle one batch of epoll events; *tick set when the timerfd fired.
 * false on a fatal error (message in w->err). */
static bool handle_events(struct worker *w, const struct epoll_event *evs, int k, bool *tick)
{
    for (int e = 0; e < k; e++) {
        uint32_t id = evs[e].data.u32;
        if (id == TIMER_TAG) {
            uint64_t exp;
            ssize_t r = read(w->tfd, &exp, sizeof exp);
            if (r == (ssize_t)sizeof exp) {
                *tick = true;
                w->st.ticks_missed += exp - 1;
            } else if (!(r < 0 && (errno == EAGAIN || errno == EINTR))) {
                snprintf(w->err, sizeof w->err, "timerfd read: %s", r < 0 ? strerror(errno) : "short");
                return false;
            }
            continue;
        }
        struct conn *c = &w->conns[id];
        if (c->fd < 0)
            continue;
        if (evs[e].events & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t elen = sizeof err;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err == 0)
                err = EPIPE;
            conn_fail(w, c, err);
        } else if (evs[e].events & EPOLLOUT) {
            conn_drain(w, c);
        }
    }
    return true;
}

static bool epoll_batch(struct worker *w, struct epoll_event *evs, int timeout_ms, bool *tick,
                        int *got)
{
    int k = epoll_wait(w->epfd, evs, MAX_EVENTS, timeout_ms);
    if (k < 0) {
        *got = 0;
        if (errno == EINTR)
            return true;
        snprintf(w->err, sizeof w->err, "epoll_wait: %s", strerror(errno));
        return false;
    }
    *got = k;
    return handle_events(w, evs, k, tick);
}

/* T = 0: rounds back to back, with a non-blocking look at EPOLLOUT between.
 * A round that could offer nothing (every socket still queued: the reader
 * is not keeping up) waits for EPOLLOUT instead of spinning. */
static bool loop_back_to_back(struct worker *w, struct epoll_event *evs, int64_t deadline)
{
    int64_t now;
    while ((now = mono_ns()) < deadline && !stopping()) {
        int timeout = 0;
        if (write_round(w) == 0)
            timeout = (int)((deadline - now + NS_PER_MS - 1) / NS_PER_MS);
        bool tick = false;
        int got;
        do {
            if (!epoll_batch(w, evs, timeout, &tick, &got))
                return false;
            timeout = 0;
        } while (got == MAX_EVENTS);
    }
    return true;
}

/* T > 0: one round per timerfd expiration; EPOLLOUT handled as it comes. */
static bool loop_ticked(struct worker *w, struct epoll_event *evs, int64_t deadline)
{
    /* first round at once, then every T ms */
    struct itimerspec its = {
        .it_value = {.tv_sec = 0, .tv_nsec = 1},
        .it_interval = {.tv_sec = w->tick_ms / 1000, .tv_nsec = (long)(w->tick_ms % 1000) * NS_PER_MS},
    };
    if (timerfd_settime(w->tfd, 0, &its, NULL) != 0) {
        snprintf(w->err, sizeof w->err, "timerfd_settime: %s", strerror(errno));
        return false;
    }
    int64_t now;
    while ((now = mono_ns()) < deadline && !stopping()) {
        int timeout = (int)((deadline - now + NS_PER_MS - 1) / NS_PER_MS);
        bool tick = false;
        int got;
        if (!epoll_batch(w, evs, timeout, &tick, &got))
            return false;
        if (tick && mono_ns() < deadline)
            write_round(w);
    }
    return true;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event *evs = calloc(MAX_EVENTS, sizeof *evs);
    if (!evs)
        snprintf(w->err, sizeof w->err, "out of memory");
    /* pthread mutex/cond calls cannot fail here (default attributes, valid
     * objects, owned mutex) */
    pthread_mutex_lock(&w->sh->mu);
    while (w->sh->go == 0)
        pthread_cond_wait(&w->sh->cv, &w->sh->mu);
    int go = w->sh->go;
    int64_t deadline = w->sh->deadline_ns;
    pthread_mutex_unlock(&w->sh->mu);
    if (go > 0 && w->err[0] == '\0') {
        if (w->tick_ms == 0)
            (void)loop_back_to_back(w, evs, deadline);
        else
            (void)loop_ticked(w, evs, deadline);
    }
    free(evs);
    return NULL;
}

/* ------------------------------------------------------------------ the parent */

static bool workers_init(struct worker *ws, int k, const struct opts *o, const unsigned char *frame,
                         struct shared *sh)
{
    size_t per = ((size_t)o->clients + (size_t)k - 1) / (size_t)k;
    for (int i = 0; i < k; i++) {
        struct worker *w = &ws[i];
        *w = (struct worker){.epfd = -1, .tfd = -1, .frame = frame,
                             .frame_bytes = o->frame_bytes, .tick_ms = o->tick_ms, .sh = sh};
    }
    for (int i = 0; i < k; i++) {
        struct worker *w = &ws[i];
        w->conns = calloc(per, sizeof *w->conns);
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (!w->conns || w->epfd < 0) {
            fail("writer %d: %s", i, w->epfd < 0 ? strerror(errno) : "out of memory");
            return false;
        }
        if (o->tick_ms > 0) {
            w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = TIMER_TAG};
            if (w->tfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->tfd, &ev) != 0) {
                fail("writer %d: timerfd: %s", i, strerror(errno));
                return false;
            }
        }
    }
    return true;
}

static void workers_free(struct worker *ws, int k)
{
    for (int i = 0; i < k; i++) {
        struct worker *w = &ws[i];
        for (size_t j = 0; j < w->nconns; j++)
            close_fd(&w->conns[j].fd);
        free(w->conns);
        close_fd(&w->tfd);
        close_fd(&w->epfd);
    }
    free(ws);
}

/* Accepted socket number n goes to writer n % k: TCP_NODELAY, edge-triggered
 * EPOLLOUT in that writer's epoll. */
static bool adopt(struct worker *ws, int k, int n, int fd)
{
    struct worker *w = &ws[n % k];
    struct conn *c = &w->conns[w->nconns];
    c->fd = fd;
    c->left = 0;
    w->nconns++;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        fail("setsockopt TCP_NODELAY: %s", strerror(errno));
        return false;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)(w->nconns - 1)};
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        fail("epoll_ctl ADD: %s", strerror(errno));
        return false;
    }
    return true;
}

/* Accept the N connections the child makes, watching that it stays alive. */
static bool accept_all(int lfd, int n, struct worker *ws, int k, pid_t *child)
{
    bool ok = false;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 0};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0) {
        fail("epoll for accept: %s", strerror(errno));
        goto out;
    }
    int64_t give_up = mono_ns() + CONNECT_TIMEOUT_NS;
    int got = 0;
    while (got < n) {
        if (stopping()) {
            fail("interrupted after %d of %d clients connected", got, n);
            goto out;
        }
        if (mono_ns() > give_up) {
            fail("only %d of %d clients connected within %lld s", got, n,
                 CONNECT_TIMEOUT_NS / NS_PER_S);
            goto out;
        }
        if (epoll_wait(ep, &ev, 1, ACCEPT_POLL_MS) < 0 && errno != EINTR) {
            fail("epoll_wait (accept): %s", strerror(errno));
            goto out;
        }
        while (got < n) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    break;
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                fail("accept after %d clients: %s", got, strerror(errno));
                goto out;
            }
            if (!adopt(ws, k, got++, fd))
                goto out;
        }
        int status;
        if (got < n && child_gone(child, &status)) {
            char why[64];
            describe_exit(status, why, sizeof why);
            fail("the reader exited (%s) after %d of %d clients connected", why, got, n);
            goto out;
        }
    }
    ok = true;
out:
    close_fd(&ep);
    return ok;
}

/* Swallow the EPOLLOUT edge every socket reports once on registration, so
 * that it does not land in the measurement window. */
static bool flush_initial_events(struct worker *ws, int k)
{
    struct epoll_event *evs = calloc(MAX_EVENTS, sizeof *evs);
    if (!evs) {
        fail("out of memory");
        return false;
    }
    bool ok = true;
    for (int i = 0; i < k && ok; i++) {
        int got;
        do {
            bool tick = false;
            ok = epoll_batch(&ws[i], evs, 0, &tick, &got);
        } while (ok && got == MAX_EVENTS);
        if (!ok)
            fail("writer %d: %s", i, ws[i].err);
    }
    free(evs);
    return ok;
}

static bool sample_self(struct cpu *out)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        fail("getrusage: %s", strerror(errno));
        return false;
    }
    out->user_s = tv_s(ru.ru_utime);
    out->sys_s = tv_s(ru.ru_stime);
    return true;
}

static void stats_add(struct stats *a, const struct stats *b)
{
    a->frames += b->frames;
    a->queued += b->queued;
    a->drained += b->drained;
    a->skipped += b->skipped;
    a->bytes += b->bytes;
    a->writes += b->writes;
    a->rounds += b->rounds;
    a->ticks_missed += b->ticks_missed;
    a->failed += b->failed;
}

/* Open the gate: 1 runs the writers until deadline, -1 sends them home. */
static void open_gate(struct shared *sh, int go, int64_t deadline)
{
    pthread_mutex_lock(&sh->mu);
    sh->go = go;
    sh->deadline_ns = deadline;
    pthread_cond_broadcast(&sh->cv);
    pthread_mutex_unlock(&sh->mu);
}

/* Start the writers, run the window, join them, and sum what they did. */
static bool run_window(struct worker *ws, int k, struct shared *sh, double duration_s, pid_t child,
                       struct result *res)
{
    bool ok = true;
    int started = 0;
    for (; started < k; started++) {
        int r = pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]);
        if (r != 0) {
            fail("pthread_create: %s", strerror(r));
            ok = false;
            break;
        }
    }
    struct cpu s0 = {0}, s1 = {0}, c0 = {0}, c1 = {0};
    if (ok)
        ok = sample_self(&s0) && proc_cpu(child, &c0);
    int64_t t0 = mono_ns();
    open_gate(sh, ok ? 1 : -1, t0 + (int64_t)(duration_s * (double)NS_PER_S));
    for (int i = 0; i < started; i++) {
        int r = pthread_join(ws[i].tid, NULL);
        if (r != 0) {
            fail("pthread_join: %s", strerror(r));
            ok = false;
        }
    }
    int64_t t1 = mono_ns();
    if (ok)
        ok = sample_self(&s1) && proc_cpu(child, &c1);
    if (!ok)
        return false;

    *res = (struct result){.wall_s = (double)(t1 - t0) / (double)NS_PER_S};
    res->server = (struct cpu){s1.user_s - s0.user_s, s1.sys_s - s0.sys_s};
    res->reader = (struct cpu){c1.user_s - c0.user_s, c1.sys_s - c0.sys_s};
    res->rounds_min = UINT64_MAX;
    for (int i = 0; i < k; i++) {
        const struct worker *w = &ws[i];
        if (w->err[0]) {
            fail("writer %d: %s", i, w->err);
            ok = false;
        }
        stats_add(&res->st, &w->st);
        if (w->st.rounds < res->rounds_min)
            res->rounds_min = w->st.rounds;
        if (w->st.rounds > res->rounds_max)
            res->rounds_max = w->st.rounds;
        for (size_t j = 0; j < w->nconns; j++)
            res->pending_at_end += w->conns[j].left > 0;
        if (w->st.failed)
            fail("writer %d: %" PRIu64 " sockets failed, first with: %s", i, w->st.failed,
                 strerror(w->first_errno));
    }
    return ok && res->st.failed == 0;
}

/* ------------------------------------------------------------------ output */

static void print_result(const struct opts *o, const struct result *r)
{
    double cpu = r->server.user_s + r->server.sys_s;
    double rcpu = r->reader.user_s + r->reader.sys_s;
    double rounds = (double)r->st.rounds / o->threads;
    printf("epwriter: %d clients, %d-byte frames, %d thread%s, ", o->clients, o->frame_bytes,
           o->threads, o->threads == 1 ? "" : "s");
    if (o->tick_ms)
        printf("a round every %d ms", o->tick_ms);
    else
        printf("back-to-back rounds");
    printf(", %d source%s, connected in %.2f s\n", o->sources, o->sources == 1 ? "" : "s",
           r->connect_s);
    printf("  window               %.3f s\n", r->wall_s);
    printf("  frames written       %" PRIu64 " (queued %" PRIu64 ", drained %" PRIu64
           ", pending at end %" PRIu64 ")\n",
           r->st.frames, r->st.queued, r->st.drained, r->pending_at_end);
    printf("  skipped frames       %" PRIu64 "\n", r->st.skipped);
    printf("  frames/wall-s        %.0f\n", per_s((double)r->st.frames, r->wall_s));
    printf("  frames/server-CPU-s  %.0f\n", per_s((double)r->st.frames, cpu));
    printf("  server CPU           %.2f s (user %.2f, sys %.2f) = %.2f cores\n", cpu,
           r->server.user_s, r->server.sys_s, per_s(cpu, r->wall_s));
    printf("  rounds/s             %.2f per thread", per_s(rounds, r->wall_s));
    if (o->threads > 1)
        printf(" (min %.2f, max %.2f)", per_s((double)r->rounds_min, r->wall_s),
               per_s((double)r->rounds_max, r->wall_s));
    printf("\n");
    if (o->tick_ms)
        printf("  ticks missed         %" PRIu64 "\n", r->st.ticks_missed);
    printf("  write() calls        %" PRIu64 " (%.0f/s)\n", r->st.writes,
           per_s((double)r->st.writes, r->wall_s));
    printf("  bytes                %" PRIu64 " (%.1f MB/s)\n", r->st.bytes,
           per_s((double)r->st.bytes, r->wall_s) / 1e6);
    printf("  reader child CPU     %.2f s (user %.2f, sys %.2f) = %.2f cores\n", rcpu,
           r->reader.user_s, r->reader.sys_s, per_s(rcpu, r->wall_s));
}

static bool write_json(const struct opts *o, const struct result *r)
{
    FILE *f = fopen(o->json, "w");
    if (!f) {
        fail("open %s: %s", o->json, strerror(errno));
        return false;
    }
    double cpu = r->server.user_s + r->server.sys_s;
    double rcpu = r->reader.user_s + r->reader.sys_s;
    double rounds = (double)r->st.rounds / o->threads;
    fprintf(f,
            "{\"clients\":%d,\"frame_bytes\":%d,\"duration_s\":%.3f,\"tick_ms\":%d,"
            "\"threads\":%d,\"sources\":%d,\"reader_poll_ms\":%d,"
            "\"connect_s\":%.3f,\"wall_s\":%.6f,"
            "\"frames\":%" PRIu64 ",\"queued\":%" PRIu64 ",\"drained\":%" PRIu64
            ",\"pending_at_end\":%" PRIu64 ",\"skipped\":%" PRIu64 ",\"bytes\":%" PRIu64
            ",\"writes\":%" PRIu64 ",\"ticks_missed\":%" PRIu64 ","
            "\"frames_per_wall_s\":%.1f,\"frames_per_cpu_s\":%.1f,"
            "\"rounds\":%.1f,\"rounds_per_s\":%.3f,\"rounds_min\":%" PRIu64
            ",\"rounds_max\":%" PRIu64 ","
            "\"server_cpu_s\":%.3f,\"server_user_s\":%.3f,\"server_sys_s\":%.3f,"
            "\"reader_cpu_s\":%.3f,\"reader_user_s\":%.3f,\"reader_sys_s\":%.3f}\n",
            o->clients, o->frame_bytes, o->duration_s, o->tick_ms, o->threads, o->sources,
            o->reader_poll_ms, r->connect_s, r->wall_s, r->st.frames, r->st.queued, r->st.drained,
            r->pending_at_end,
            r->st.skipped, r->st.bytes, r->st.writes, r->st.ticks_missed,
            per_s((double)r->st.frames, r->wall_s), per_s((double)r->st.frames, cpu), rounds,
            per_s(rounds, r->wall_s), r->rounds_min, r->rounds_max, cpu, r->server.user_s,
            r->server.sys_s, rcpu, r->reader.user_s, r->reader.sys_s);
    bool werr = ferror(f) != 0;
    if (fclose(f) != 0 || werr) {
        fail("write %s failed", o->json);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    struct opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc < 0)
        return 0;
    if (prc > 0)
        return prc;

    /* a reader that vanishes must show up as a failed socket, not a signal;
     * a stop request must still kill and reap the reader */
    struct sigaction ign = {.sa_handler = SIG_IGN}, stop = {.sa_handler = on_stop_signal};
    if (sigemptyset(&ign.sa_mask) != 0 || sigemptyset(&stop.sa_mask) != 0 ||
        sigaction(SIGPIPE, &ign, NULL) != 0 || sigaction(SIGINT, &stop, NULL) != 0 ||
        sigaction(SIGTERM, &stop, NULL) != 0 || sigaction(SIGHUP, &stop, NULL) != 0) {
        fail("sigaction: %s", strerror(errno));
        return 1;
    }
    if (!raise_nofile((rlim_t)o.clients + FD_MARGIN))
        return 1;

    int rc = 1;
    pid_t child = 0;
    int lfd = -1;
    struct worker *ws = NULL;
    struct shared sh = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .go = 0};
    struct result res;
    unsigned char *frame = make_frame(o.frame_bytes);
    if (!frame)
        goto out;
    struct sockaddr_in srv;
    lfd = listen_loopback(o.clients < 65535 ? o.clients : 65535, &srv);
    if (lfd < 0)
        goto out;

    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    child = fork();
    if (child < 0) {
        fail("fork: %s", strerror(errno));
        child = 0;
        goto out;
    }
    if (child == 0) {
        close_fd(&lfd);
        free(frame);
        reader_main(&o, &srv, parent); /* never returns */
    }

    ws = calloc((size_t)o.threads, sizeof *ws);
    if (!ws) {
        fail("out of memory");
        goto out;
    }
    if (!workers_init(ws, o.threads, &o, frame, &sh))
        goto out;
    int64_t c0 = mono_ns();
    if (!accept_all(lfd, o.clients, ws, o.threads, &child))
        goto out;
    double connect_s = (double)(mono_ns() - c0) / (double)NS_PER_S;
    close_fd(&lfd);
    if (!flush_initial_events(ws, o.threads))
        goto out;
    if (!run_window(ws, o.threads, &sh, o.duration_s, child, &res))
        goto out;
    if (stopping()) {
        fail("interrupted");
        goto out;
    }
    res.connect_s = connect_s;

    int status;
    if (child_gone(&child, &status)) {
        char why[64];
        describe_exit(status, why, sizeof why);
        fail("the reader exited during the run (%s)", why);
        goto out;
    }
    print_result(&o, &res);
    if (o.json && !write_json(&o, &res))
        goto out;
    rc = 0;
out:
    kill_child(&child);
    if (ws)
        workers_free(ws, o.threads);
    close_fd(&lfd);
    free(frame);
    fflush(stdout);
    return rc;
}
