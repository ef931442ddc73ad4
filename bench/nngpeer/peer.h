#include <stdint.h>

struct peer_opts {
	const char *pattern, *role, *mode, *url, *url2;
	int size, queue, subs;
	int64_t dur_ns, warm_ns, max_samples;
};

struct peer_result {
	int64_t samples, p50, p99, min, max, msgs;
	double seconds, msgs_per_s;
};

int peer_serve(const struct peer_opts *o);
int peer_run(const struct peer_opts *o, struct peer_result *r);
const char *peer_error(void);
