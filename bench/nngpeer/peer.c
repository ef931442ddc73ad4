// ferry-nngpeer's loops: every send, receive, echo and clock reading is
// here, so Go makes one cgo call per run rather than one per message.
#include "peer.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#define SECOND 1000000000LL

// The socket types used here.
enum { K_NONE, K_PAIR1, K_REQ, K_REP, K_PUSH, K_PULL, K_PUB, K_SUB };

static const char *kind_name[] = {"none", "pair1", "req0", "rep0", "push0", "pull0", "pub0", "sub0"};

static char errmsg[1024];

const char *peer_error(void) { return errmsg; }

static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int failf(const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof errmsg, fmt, ap);
	va_end(ap);
	return -1;
}

// nngfail records "what: NNG's error text".
static int nngfail(const char *what, int rv) { return failf("%s: %s", what, nng_strerror(rv)); }

static int64_t mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SECOND + ts.tv_nsec;
}

// sleep_until sleeps until the monotonic clock reads t (restarting after
// signals, which the Go runtime may deliver to this thread).
static void sleep_until(int64_t t) {
	struct timespec ts = {.tv_sec = t / SECOND, .tv_nsec = t % SECOND};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
	}
}

static void sleep_ns(int64_t d) { sleep_until(mono_ns() + d); }

static int open_kind(int kind, nng_socket *s) {
	switch (kind) {
	case K_PAIR1: return nng_pair1_open(s);
	case K_REQ: return nng_req0_open(s);
	case K_REP: return nng_rep0_open(s);
	case K_PUSH: return nng_push0_open(s);
	case K_PULL: return nng_pull0_open(s);
	case K_PUB: return nng_pub0_open(s);
	case K_SUB: return nng_sub0_open(s);
	}
	return NNG_EINVAL;
}

// set_opt applies one socket option; a protocol without it is fine.
static int set_opt(int rv, const char *kind, const char *opt) {
	if (rv == 0 || rv == NNG_ENOTSUP) return 0;
	return failf("%s %s: %s", kind, opt, nng_strerror(rv));
}

// peer_socket opens a socket of the given kind with the options every
// socket of the benchmark gets, then listens on url or dials it.
static int peer_socket(int kind, const struct peer_opts *o, const char *url, int listen, nng_socket *s) {
	const char *kn = kind_name[kind];
	int rv = open_kind(kind, s);
	if (rv != 0) return failf("nng_%s_open: %s", kn, nng_strerror(rv));
	size_t maxsz = (size_t)o->size + 1024;
	if (maxsz < ((size_t)1 << 20)) maxsz = (size_t)1 << 20;
	if (set_opt(nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, maxsz), kn, NNG_OPT_RECVMAXSZ) != 0 ||
	    set_opt(nng_socket_set_int(*s, NNG_OPT_SENDBUF, o->queue), kn, NNG_OPT_SENDBUF) != 0 ||
	    set_opt(nng_socket_set_int(*s, NNG_OPT_RECVBUF, o->queue), kn, NNG_OPT_RECVBUF) != 0) {
		return -1;
	}
	if (kind == K_SUB && (rv = nng_socket_set(*s, NNG_OPT_SUB_SUBSCRIBE, "", 0)) != 0) {
		return failf("%s %s: %s", kn, NNG_OPT_SUB_SUBSCRIBE, nng_strerror(rv));
	}
	if (listen) {
		if ((rv = nng_listen(*s, url, NULL, 0)) != 0) return failf("nng_listen %s: %s", url, nng_strerror(rv));
		return 0;
	}
	// The far side may still be starting: retry a refused dial for 10 s.
	int64_t give_up = mono_ns() + 10 * SECOND;
	while ((rv = nng_dial(*s, url, NULL, 0)) == NNG_ECONNREFUSED && mono_ns() < give_up) {
		sleep_ns(10 * 1000000LL);
	}
	if (rv != 0) return failf("nng_dial %s: %s", url, nng_strerror(rv));
	return 0;
}

// new_msg allocates a size-byte message holding payload.
static int new_msg(nng_msg **m, const void *payload, size_t size) {
	int rv = nng_msg_alloc(m, size);
	if (rv != 0) return nngfail("nng_msg_alloc", rv);
	if (size > 0) memcpy(nng_msg_body(*m), payload, size);
	return 0;
}

static void *make_payload(size_t size) {
	unsigned char *p = malloc(size > 0 ? size : 1);
	if (p == NULL) return NULL;
	for (size_t i = 0; i < size; i++) p[i] = (unsigned char)('a' + i % 26);
	return p;
}

static int start_thread(void *(*fn)(void *), void *arg) {
	pthread_attr_t a;
	pthread_t t;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&a, 256 << 10);
	int rv = pthread_create(&t, &a, fn, arg);
	pthread_attr_destroy(&a);
	if (rv != 0) return failf("pthread_create: %s", strerror(rv));
	return 0;
}

// ---- serve ----

// watch_stdin ends the process when stdin ends: that is how the parent
// stops the far side.
static void *watch_stdin(void *arg) {
	(void)arg;
	char buf[512];
	for (;;) {
		ssize_t n = read(0, buf, sizeof buf);
		if (n > 0 || (n < 0 && errno == EINTR)) continue;
		_exit(0);
	}
	return NULL;
}

int peer_serve(const struct peer_opts *o) {
	int in_kind = K_NONE, out_kind = K_NONE;
	if (o->what == PEER_ECHO) {
		switch (o->pattern) {
		case PEER_PAIR: in_kind = K_PAIR1; break;
		case PEER_REQREP: in_kind = K_REP; break;
		case PEER_PUSHPULL: in_kind = K_PULL; out_kind = K_PUSH; break;
		case PEER_PUBSUB: in_kind = K_SUB; out_kind = K_PUB; break;
		}
	} else if (o->what == PEER_SOURCE) {
		switch (o->pattern) {
		case PEER_PAIR: out_kind = K_PAIR1; break;
		case PEER_PUSHPULL: out_kind = K_PUSH; break;
		case PEER_PUBSUB:
		case PEER_FANOUT: out_kind = K_PUB; break;
		}
	}
	if (in_kind == K_NONE && out_kind == K_NONE) return failf("serve: no such pattern and role");

	nng_socket in = NNG_SOCKET_INITIALIZER, out = NNG_SOCKET_INITIALIZER;
	void *payload = NULL;
	if (o->what == PEER_ECHO) {
		if (peer_socket(in_kind, o, o->url, 1, &in) != 0) return -1;
		out = in;
		if (out_kind != K_NONE && peer_socket(out_kind, o, o->url2, 1, &out) != 0) return -1;
	} else {
		if ((payload = make_payload((size_t)o->size)) == NULL) return failf("out of memory");
		if (peer_socket(out_kind, o, o->url, 1, &out) != 0) return -1;
	}
	fputs("ready\n", stdout);
	fflush(stdout);
	if (start_thread(watch_stdin, NULL) != 0) return -1;

	for (;;) {
		nng_msg *m;
		int rv;
		if (o->what == PEER_ECHO) {
			if ((rv = nng_recvmsg(in, &m, 0)) != 0) {
				if (rv == NNG_ECLOSED) return 0;
				return failf("%s nng_recvmsg: %s", kind_name[in_kind], nng_strerror(rv));
			}
		} else if (new_msg(&m, payload, (size_t)o->size) != 0) {
			return -1;
		}
		// An echo sends back the very message it received: NNG replaces
		// the protocol header (REQ/REP backtrace, PAIR1 hops) itself.
		if ((rv = nng_sendmsg(out, m, 0)) != 0) {
			nng_msg_free(m);
			if (rv == NNG_ECLOSED) return 0;
			return failf("%s nng_sendmsg: %s", kind_name[out_kind != K_NONE ? out_kind : in_kind], nng_strerror(rv));
		}
	}
}

// ---- run lat ----

static int cmp_i64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

static int64_t pick(const int64_t *sorted, int64_t n, double q) {
	int64_t i = (int64_t)((double)n * q);
	return sorted[i < n - 1 ? i : n - 1];
}

static int check_len(nng_msg *m, int64_t size) {
	if ((int64_t)nng_msg_len(m) != size) {
		return failf("echo of %lld bytes came back with %lld", (long long)size, (long long)nng_msg_len(m));
	}
	return 0;
}

static int run_lat(const struct peer_opts *o, struct peer_result *r) {
	int out_kind, in_kind = K_NONE;
	switch (o->pattern) {
	case PEER_PAIR: out_kind = K_PAIR1; break;
	case PEER_REQREP: out_kind = K_REQ; break;
	case PEER_PUSHPULL: out_kind = K_PUSH; in_kind = K_PULL; break;
	case PEER_PUBSUB: out_kind = K_PUB; in_kind = K_SUB; break;
	default: return failf("lat: no such pattern");
	}
	nng_socket out, in;
	if (peer_socket(out_kind, o, o->url, 0, &out) != 0) return -1;
	in = out;
	if (in_kind != K_NONE && peer_socket(in_kind, o, o->url2, 0, &in) != 0) return -1;
	const char *in_name = kind_name[in_kind != K_NONE ? in_kind : out_kind];
	const char *out_name = kind_name[out_kind];

	void *payload = make_payload((size_t)o->size);
	if (payload == NULL) return failf("out of memory");
	int64_t cap = o->max_samples < 65536 ? o->max_samples : 65536;
	int64_t *lat = malloc((size_t)cap * sizeof *lat);
	if (lat == NULL) return failf("out of memory");
	int rv;
	if ((rv = nng_socket_set_ms(out, NNG_OPT_SENDTIMEO, 10000)) != 0) return nngfail("send-timeout", rv);

	// Warm-up: round trips for warm_ns (and until one has come back). A
	// publisher drops what it sends before its pipe is up, so a round trip
	// that times out is sent again; REQ cancels the old request itself.
	if ((rv = nng_socket_set_ms(in, NNG_OPT_RECVTIMEO, 200)) != 0) return nngfail("recv-timeout", rv);
	int64_t start = mono_ns(), end = start + o->warm_ns, back = 0;
	while (mono_ns() < end || back == 0) {
		if (back == 0 && mono_ns() - start > 10 * SECOND + o->warm_ns) {
			return failf("warm-up: no echo came back in %.1f s", (double)(mono_ns() - start) / 1e9);
		}
		nng_msg *m;
		if (new_msg(&m, payload, (size_t)o->size) != 0) return -1;
		if ((rv = nng_sendmsg(out, m, 0)) != 0) {
			nng_msg_free(m);
			return failf("%s nng_sendmsg: %s", out_name, nng_strerror(rv));
		}
		rv = nng_recvmsg(in, &m, 0);
		if (rv == NNG_ETIMEDOUT) continue;
		if (rv != 0) return failf("%s nng_recvmsg: %s", in_name, nng_strerror(rv));
		int bad = check_len(m, o->size);
		nng_msg_free(m);
		if (bad) return -1;
		back++;
	}
	// An echo that came back after its 200 ms would answer a later round
	// trip: drop whatever is already queued.
	for (;;) {
		nng_msg *m;
		if (nng_recvmsg(in, &m, NNG_FLAG_NONBLOCK) != 0) break;
		nng_msg_free(m);
	}

	// Measuring: one message goes round and round; a timeout is an error.
	if ((rv = nng_socket_set_ms(in, NNG_OPT_RECVTIMEO, 10000)) != 0) return nngfail("recv-timeout", rv);
	nng_msg *m;
	if (new_msg(&m, payload, (size_t)o->size) != 0) return -1;
	int64_t n = 0;
	end = mono_ns() + o->dur_ns;
	for (;;) {
		int64_t t0 = mono_ns();
		if ((rv = nng_sendmsg(out, m, 0)) != 0) return failf("%s nng_sendmsg: %s", out_name, nng_strerror(rv));
		if ((rv = nng_recvmsg(in, &m, 0)) != 0) return failf("%s nng_recvmsg: %s", in_name, nng_strerror(rv));
		int64_t t1 = mono_ns();
		if (check_len(m, o->size) != 0) return -1;
		if (n == cap) {
			cap = cap * 2 < o->max_samples ? cap * 2 : o->max_samples;
			int64_t *l2 = realloc(lat, (size_t)cap * sizeof *lat);
			if (l2 == NULL) return failf("out of memory");
			lat = l2;
		}
		lat[n++] = t1 - t0;
		if (n >= o->max_samples || (n >= 2 && t1 >= end)) break;
	}
	qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
	r->samples = n;
	r->p50ns = pick(lat, n, 0.50);
	r->p99ns = pick(lat, n, 0.99);
	r->minns = lat[0];
	r->maxns = lat[n - 1];
	return 0;
}

// ---- run tput ----

static int64_t received; // messages counted by every receiver
static int recv_err;     // the first receive error, if any

struct receiver {
	nng_socket s;
};

static void *receive_loop(void *arg) {
	nng_socket s = ((struct receiver *)arg)->s;
	for (;;) {
		nng_msg *m;
		int rv = nng_recvmsg(s, &m, 0);
		if (rv != 0) {
			int none = 0;
			if (rv != NNG_ECLOSED) __atomic_compare_exchange_n(&recv_err, &none, rv, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
			return NULL;
		}
		nng_msg_free(m);
		__atomic_fetch_add(&received, 1, __ATOMIC_RELAXED);
	}
}

static int64_t count(void) { return __atomic_load_n(&received, __ATOMIC_RELAXED); }

static int check_recv_err(int kind) {
	int rv = __atomic_load_n(&recv_err, __ATOMIC_SEQ_CST);
	if (rv != 0) return failf("%s nng_recvmsg: %s", kind_name[kind], nng_strerror(rv));
	return 0;
}

static int run_tput(const struct peer_opts *o, struct peer_result *r) {
	int kind, n = 1;
	switch (o->pattern) {
	case PEER_PAIR: kind = K_PAIR1; break;
	case PEER_PUSHPULL: kind = K_PULL; break;
	case PEER_PUBSUB: kind = K_SUB; break;
	case PEER_FANOUT: kind = K_SUB; n = o->subs; break;
	default: return failf("tput: no such pattern");
	}
	struct receiver *rs = calloc((size_t)n, sizeof *rs);
	if (rs == NULL) return failf("out of memory");
	for (int i = 0; i < n; i++) {
		if (peer_socket(kind, o, o->url, 0, &rs[i].s) != 0) return -1;
		if (start_thread(receive_loop, &rs[i]) != 0) return -1;
	}
	int64_t limit = mono_ns() + 30 * SECOND;
	while (count() == 0) {
		if (check_recv_err(kind) != 0) return -1;
		if (mono_ns() > limit) return failf("no message arrived");
		sleep_ns(100000);
	}
	sleep_ns(o->warm_ns);
	int64_t c0 = count(), t0 = mono_ns();
	sleep_until(t0 + o->dur_ns);
	limit = mono_ns() + 30 * SECOND;
	while (count() - c0 < 2) {
		if (check_recv_err(kind) != 0) return -1;
		if (mono_ns() > limit) return failf("stalled: %lld messages", (long long)(count() - c0));
		sleep_ns(1000000);
	}
	int64_t c1 = count(), t1 = mono_ns();
	r->msgs = c1 - c0;
	r->seconds = (double)(t1 - t0) / 1e9;
	r->msgs_per_s = (double)r->msgs / r->seconds;
	return 0;
}

int peer_run(const struct peer_opts *o, struct peer_result *r) {
	memset(r, 0, sizeof *r);
	if (o->what == PEER_LAT) return run_lat(o, r);
	if (o->what == PEER_TPUT) return run_tput(o, r);
	return failf("run: no such mode");
}
