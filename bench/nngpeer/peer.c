// The hot loops of ferry-nngpeer: everything per message happens here, in
// C, so no cgo call is made per message.
#include "peer.h"

#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char errbuf[512];

const char *peer_error(void) { return errbuf; }

static int fail(const char *what, const char *url, int rv) {
	snprintf(errbuf, sizeof errbuf, "%s %s: %s", what, url ? url : "", nng_strerror(rv));
	return -1;
}

static int64_t now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int open_sock(const char *kind, nng_socket *s) {
	int rv;
	if (strcmp(kind, "pair1") == 0) rv = nng_pair1_open(s);
	else if (strcmp(kind, "req") == 0) rv = nng_req0_open(s);
	else if (strcmp(kind, "rep") == 0) rv = nng_rep0_open(s);
	else if (strcmp(kind, "push") == 0) rv = nng_push0_open(s);
	else if (strcmp(kind, "pull") == 0) rv = nng_pull0_open(s);
	else if (strcmp(kind, "pub") == 0) rv = nng_pub0_open(s);
	else if (strcmp(kind, "sub") == 0) rv = nng_sub0_open(s);
	else { snprintf(errbuf, sizeof errbuf, "unknown socket %s", kind); return -1; }
	if (rv != 0) return fail("open", kind, rv);
	return 0;
}

// setup opens a socket of kind with the bench's options and listens on,
// or dials, url.
static int setup(const char *kind, const struct peer_opts *o, const char *url, int listen, nng_socket *s) {
	if (open_sock(kind, s) != 0) return -1;
	size_t maxsz = (size_t)o->size + 1024;
	if (maxsz < (1 << 20)) maxsz = 1 << 20;
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, maxsz);
	nng_socket_set_int(*s, NNG_OPT_SENDBUF, o->queue); // not every protocol has them
	nng_socket_set_int(*s, NNG_OPT_RECVBUF, o->queue);
	if (strcmp(kind, "sub") == 0) {
		int rv = nng_socket_set(*s, NNG_OPT_SUB_SUBSCRIBE, "", 0);
		if (rv != 0) return fail("subscribe", url, rv);
	}
	if (listen) {
		int rv = nng_listen(*s, url, NULL, 0);
		if (rv != 0) return fail("nng_listen", url, rv);
		return 0;
	}
	int64_t give_up = now_ns() + 10000000000LL;
	for (;;) {
		int rv = nng_dial(*s, url, NULL, 0);
		if (rv == 0) return 0;
		if (rv != NNG_ECONNREFUSED || now_ns() > give_up) return fail("nng_dial", url, rv);
		usleep(10000);
	}
}

static int new_msg(nng_msg **m, int size) {
	int rv = nng_msg_alloc(m, (size_t)size);
	if (rv != 0) return fail("nng_msg_alloc", NULL, rv);
	memset(nng_msg_body(*m), 0x5a, (size_t)size);
	return 0;
}

static void *stdin_watch(void *arg) {
	(void)arg;
	char buf[256];
	while (read(0, buf, sizeof buf) > 0) {
	}
	_exit(0);
	return NULL;
}

int peer_serve(const struct peer_opts *o) {
	const char *p = o->pattern;
	int echo = strcmp(o->role, "echo") == 0;
	nng_socket in, out;
	if (echo) {
		const char *ik = NULL, *ok = NULL;
		if (strcmp(p, "pair") == 0) ik = "pair1";
		else if (strcmp(p, "reqrep") == 0) ik = "rep";
		else if (strcmp(p, "pushpull") == 0) { ik = "pull"; ok = "push"; }
		else if (strcmp(p, "pubsub") == 0) { ik = "sub"; ok = "pub"; }
		if (ik == NULL) { snprintf(errbuf, sizeof errbuf, "no echo for %s", p); return -1; }
		if (setup(ik, o, o->url, 1, &in) != 0) return -1;
		out = in;
		if (ok && setup(ok, o, o->url2, 1, &out) != 0) return -1;
	} else {
		const char *k = NULL;
		if (strcmp(p, "pair") == 0) k = "pair1";
		else if (strcmp(p, "pushpull") == 0) k = "push";
		else if (strcmp(p, "pubsub") == 0 || strcmp(p, "fanout") == 0) k = "pub";
		if (k == NULL) { snprintf(errbuf, sizeof errbuf, "no source for %s", p); return -1; }
		if (setup(k, o, o->url, 1, &out) != 0) return -1;
	}
	printf("ready\n");
	fflush(stdout);
	pthread_t t;
	pthread_create(&t, NULL, stdin_watch, NULL);
	for (;;) {
		nng_msg *m;
		int rv;
		if (echo) {
			if ((rv = nng_recvmsg(in, &m, 0)) != 0) return fail("nng_recvmsg", NULL, rv);
		} else if (new_msg(&m, o->size) != 0) {
			return -1;
		}
		if ((rv = nng_sendmsg(out, m, 0)) != 0) {
			nng_msg_free(m);
			return fail("nng_sendmsg", NULL, rv);
		}
	}
}

static int cmp64(const void *a, const void *b) {
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int latency(const struct peer_opts *o, struct peer_result *r) {
	const char *p = o->pattern, *ok = NULL, *ik = NULL;
	if (strcmp(p, "pair") == 0) ok = "pair1";
	else if (strcmp(p, "reqrep") == 0) ok = "req";
	else if (strcmp(p, "pushpull") == 0) { ok = "push"; ik = "pull"; }
	else if (strcmp(p, "pubsub") == 0) { ok = "pub"; ik = "sub"; }
	else { snprintf(errbuf, sizeof errbuf, "no latency for %s", p); return -1; }
	nng_socket out, in;
	if (setup(ok, o, o->url, 0, &out) != 0) return -1;
	in = out;
	if (ik && setup(ik, o, o->url2, 0, &in) != 0) return -1;
	int64_t n = o->max_samples > 0 ? o->max_samples : 1 << 20;
	int64_t *lat = malloc((size_t)n * sizeof *lat);
	if (lat == NULL) { snprintf(errbuf, sizeof errbuf, "out of memory"); return -1; }
	nng_msg *m = NULL;
	if (new_msg(&m, o->size) != 0) return -1;
	// Warm-up: a lost round trip (PUB before its pipe is up) is sent again.
	nng_socket_set_ms(in, NNG_OPT_RECVTIMEO, 200);
	int64_t end = now_ns() + o->warm_ns;
	int done = 0;
	while (now_ns() < end || done == 0) {
		nng_msg *c;
		int rv = nng_msg_dup(&c, m);
		if (rv != 0) return fail("nng_msg_dup", NULL, rv);
		if ((rv = nng_sendmsg(out, c, 0)) != 0) return fail("nng_sendmsg", NULL, rv);
		nng_msg *back;
		rv = nng_recvmsg(in, &back, 0);
		if (rv == NNG_ETIMEDOUT) {
			if (now_ns() > end + 10000000000LL) return fail("warm-up", NULL, rv);
			continue;
		}
		if (rv != 0) return fail("nng_recvmsg", NULL, rv);
		nng_msg_free(back);
		done++;
	}
	nng_socket_set_ms(in, NNG_OPT_RECVTIMEO, 10000);
	int64_t k = 0;
	end = now_ns() + o->dur_ns;
	while (k < n) {
		int64_t t0 = now_ns();
		int rv;
		if ((rv = nng_sendmsg(out, m, 0)) != 0) return fail("nng_sendmsg", NULL, rv);
		if ((rv = nng_recvmsg(in, &m, 0)) != 0) return fail("nng_recvmsg", NULL, rv);
		int64_t t1 = now_ns();
		if ((int)nng_msg_len(m) != o->size) {
			snprintf(errbuf, sizeof errbuf, "echo of %d bytes came back with %d", o->size, (int)nng_msg_len(m));
			return -1;
		}
		lat[k++] = t1 - t0;
		if (t1 > end && k >= 2) break;
	}
	qsort(lat, (size_t)k, sizeof *lat, cmp64);
	int64_t i50 = (int64_t)(k * 0.50), i99 = (int64_t)(k * 0.99);
	r->samples = k;
	r->p50 = lat[i50 < k ? i50 : k - 1];
	r->p99 = lat[i99 < k ? i99 : k - 1];
	r->min = lat[0];
	r->max = lat[k - 1];
	return 0;
}

static int64_t received;

static void *count_loop(void *arg) {
	nng_socket s = *(nng_socket *)arg;
	for (;;) {
		nng_msg *m;
		if (nng_recvmsg(s, &m, 0) != 0) return NULL;
		nng_msg_free(m);
		__atomic_add_fetch(&received, 1, __ATOMIC_RELAXED);
	}
}

static int64_t got(void) { return __atomic_load_n(&received, __ATOMIC_RELAXED); }

static void sleep_ns(int64_t ns) {
	struct timespec ts = {ns / 1000000000, ns % 1000000000};
	nanosleep(&ts, NULL);
}

static int throughput(const struct peer_opts *o, struct peer_result *r) {
	const char *p = o->pattern, *k = NULL;
	int subs = 1;
	if (strcmp(p, "pair") == 0) k = "pair1";
	else if (strcmp(p, "pushpull") == 0) k = "pull";
	else if (strcmp(p, "pubsub") == 0) k = "sub";
	else if (strcmp(p, "fanout") == 0) { k = "sub"; subs = o->subs > 0 ? o->subs : 100; }
	else { snprintf(errbuf, sizeof errbuf, "no throughput for %s", p); return -1; }
	nng_socket *socks = calloc((size_t)subs, sizeof *socks);
	for (int i = 0; i < subs; i++) {
		if (setup(k, o, o->url, 0, &socks[i]) != 0) return -1;
		pthread_t t;
		pthread_create(&t, NULL, count_loop, &socks[i]);
	}
	int64_t limit = now_ns() + 30000000000LL;
	while (got() == 0) {
		if (now_ns() > limit) { snprintf(errbuf, sizeof errbuf, "no message arrived"); return -1; }
		sleep_ns(100000);
	}
	sleep_ns(o->warm_ns);
	int64_t c0 = got(), t0 = now_ns();
	sleep_ns(o->dur_ns);
	while (got() - c0 < 2 && now_ns() - t0 < 30000000000LL) sleep_ns(1000000);
	int64_t c1 = got(), t1 = now_ns();
	r->msgs = c1 - c0;
	r->seconds = (double)(t1 - t0) / 1e9;
	r->msgs_per_s = (double)r->msgs / r->seconds;
	return 0;
}

int peer_run(const struct peer_opts *o, struct peer_result *r) {
	memset(r, 0, sizeof *r);
	if (strcmp(o->mode, "lat") == 0) return latency(o, r);
	if (strcmp(o->mode, "tput") == 0) return throughput(o, r);
	snprintf(errbuf, sizeof errbuf, "unknown mode %s", o->mode);
	return -1;
}
