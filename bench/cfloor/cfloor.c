/*
 * cfloor: the harness's C event-loop floor, the least CPU a health checker
 * can spend per check on this machine. One thread, one epoll set,
 * non-blocking sockets, a new connection per check, many checks per
 * wake-up: the design of keepalived's checker, and nothing else (no state
 * machine, no metrics, no table).
 *
 * tcp: connect, close. http: connect, write "GET / HTTP/1.0", read to the
 * end, pass on "HTTP/1.x 200".
 *
 * Every target has the same interval and timeout, so targets start in a
 * fixed round-robin order (target i at first + i*interval/n + k*interval)
 * and time out in the order they started: both schedules are a cursor, and
 * a wake-up costs only what is due.
 *
 * It is a child of director-bench (bench/cfloor.go builds it with cc at run
 * time): it prints "ready", then checks; for each line on its stdin it
 * prints its counts so far, and when its stdin closes it prints them once
 * more and ends: {"OK":n,"Failed":n,"Started":n,"OnTime":n,"Skipped":n}.
 * OnTime counts the starts within 100 ms of their plan (as the harness
 * counts the director's); Skipped, the starts it left out because the
 * target's previous run was still in flight. Behind, it starts late,
 * never skips a plan. Targets are the harness's backend addresses
 * (bench.backendAddr) from the first-th: 127.1.0.1 onwards, skipping .0
 * and .255; a mixed run starts one per group.
 *
 *	cfloor -kind tcp|http -n N -first K -port P -interval-ms MS -timeout-ms MS
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { IDLE, CONNECTING, READING };

struct target {
	struct sockaddr_in addr;
	int fd;
	enum state state;
	unsigned gen;     /* bumped at every start: tells a stale timeout entry */
	int head;         /* bytes of the status line kept */
	char status[16];  /* the first bytes of the answer */
};

struct pending { int target; unsigned gen; long long deadline; };

static struct target *targets;
static struct pending *timeouts; /* ring, in start order */
static int ntargets, tq_size, tq_head, tq_len, is_http, epfd;
static unsigned long long n_ok, n_failed, n_started, n_ontime, n_skipped;
static const char request[] = "GET / HTTP/1.0\r\nHost: bench\r\n\r\n";

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void done(struct target *t, int ok)
{
	if (t->fd >= 0)
		close(t->fd); /* closing drops it from the epoll set */
	t->fd = -1;
	t->state = IDLE;
	if (ok)
		n_ok++;
	else
		n_failed++;
}

static void begin(int i, long long due, long long now, int timeout_ms)
{
	struct target *t = &targets[i];
	if (t->state != IDLE) {
		n_skipped++;
		return; /* the previous run is still in flight: never overlap */
	}
	n_started++;
	if (now - due <= 100)
		n_ontime++;
	t->gen++;
	t->head = 0;
	t->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->fd < 0) {
		done(t, 0);
		return;
	}
	if (connect(t->fd, (struct sockaddr *)&t->addr, sizeof t->addr) < 0 && errno != EINPROGRESS) {
		done(t, 0);
		return;
	}
	t->state = CONNECTING;
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (unsigned)i };
	epoll_ctl(epfd, EPOLL_CTL_ADD, t->fd, &ev);
	int slot = (tq_head + tq_len++) % tq_size;
	timeouts[slot] = (struct pending){ i, t->gen, now + timeout_ms };
}

static void ready(int i)
{
	struct target *t = &targets[i];
	if (t->state == CONNECTING) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err || !is_http) {
			done(t, !err);
			return;
		}
		if (write(t->fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1)) {
			done(t, 0);
			return;
		}
		t->state = READING;
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (unsigned)i };
		epoll_ctl(epfd, EPOLL_CTL_MOD, t->fd, &ev);
		return;
	}
	char buf[2048];
	for (;;) {
		ssize_t n = read(t->fd, buf, sizeof buf);
		if (n > 0) {
			int keep = (int)sizeof t->status - 1 - t->head;
			if (keep > n)
				keep = (int)n;
			memcpy(t->status + t->head, buf, (size_t)keep);
			t->head += keep;
			continue;
		}
		if (n == 0) {
			t->status[t->head] = 0;
			done(t, t->head >= 12 && memcmp(t->status, "HTTP/1.", 7) == 0 &&
				       memcmp(t->status + 8, " 200", 4) == 0);
		} else if (errno != EAGAIN && errno != EINTR) {
			done(t, 0);
		}
		return;
	}
}

static void counts(void)
{
	printf("{\"OK\":%llu,\"Failed\":%llu,\"Started\":%llu,\"OnTime\":%llu,\"Skipped\":%llu}\n",
	       n_ok, n_failed, n_started, n_ontime, n_skipped);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *kind = "tcp";
	int port = 8080, interval_ms = 1000, timeout_ms = 500, first_target = 0;
	/* A peer that reset the connection makes a write fail with EPIPE;
	 * without this the signal would end the process, seen on a loaded
	 * machine as the harness's "broken pipe" */
	signal(SIGPIPE, SIG_IGN);
	ntargets = 100;
	for (int a = 1; a + 1 < argc; a += 2) {
		const char *k = argv[a], *v = argv[a + 1];
		if (!strcmp(k, "-kind")) kind = v;
		else if (!strcmp(k, "-n")) ntargets = atoi(v);
		else if (!strcmp(k, "-port")) port = atoi(v);
		else if (!strcmp(k, "-first")) first_target = atoi(v);
		else if (!strcmp(k, "-interval-ms")) interval_ms = atoi(v);
		else if (!strcmp(k, "-timeout-ms")) timeout_ms = atoi(v);
		else { fprintf(stderr, "cfloor: unknown flag %s\n", k); return 2; }
	}
	if (ntargets < 1 || first_target < 0 || interval_ms < 1 || timeout_ms < 1 || (strcmp(kind, "tcp") && strcmp(kind, "http"))) {
		fprintf(stderr, "cfloor: want -kind tcp|http and positive -n, -interval-ms, -timeout-ms\n");
		return 2;
	}
	is_http = !strcmp(kind, "http");
	targets = calloc((size_t)ntargets, sizeof *targets);
	/* entries live until they reach the head: at most the starts of one
	 * timeout, plus one round */
	tq_size = ntargets * (timeout_ms / interval_ms + 2);
	timeouts = calloc((size_t)tq_size, sizeof *timeouts);
	for (int i = 0; i < ntargets; i++) {
		int k = first_target + i;
		int n = k / 254 * 256 + k % 254 + 1; /* as bench.backendAddr */
		targets[i].addr.sin_family = AF_INET;
		targets[i].addr.sin_port = htons((unsigned short)port);
		targets[i].addr.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)(1 + (n >> 16)) << 16 | (unsigned)(n & 0xffff));
		targets[i].fd = -1;
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event stdin_ev = { .events = EPOLLIN, .data.u32 = 0xffffffffu };
	epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &stdin_ev);
	printf("ready\n");
	fflush(stdout);

	long long first = mono_ms();
	long long round = 0; /* rounds of all targets started so far */
	int next = 0;        /* the next target to start */
	struct epoll_event evs[256];
	for (;;) {
		long long now = mono_ms();
		/* start what is due: target next is planned at first + round*interval + next*interval/n */
		for (;;) {
			long long due = first + round * interval_ms + (long long)next * interval_ms / ntargets;
			if (due > now)
				break;
			begin(next, due, now, timeout_ms);
			if (++next == ntargets) {
				next = 0;
				round++;
			}
		}
		while (tq_len > 0) {
			struct pending *p = &timeouts[tq_head];
			struct target *t = &targets[p->target];
			if (t->gen == p->gen && t->state != IDLE) {
				if (p->deadline > now)
					break;
				done(t, 0);
			}
			tq_head = (tq_head + 1) % tq_size;
			tq_len--;
		}
		long long wake = first + round * interval_ms + (long long)next * interval_ms / ntargets;
		if (tq_len > 0 && timeouts[tq_head].deadline < wake)
			wake = timeouts[tq_head].deadline;
		long long wait = wake - mono_ms();
		int k = epoll_wait(epfd, evs, 256, wait < 0 ? 0 : (int)wait);
		for (int e = 0; e < k; e++) {
			if (evs[e].data.u32 == 0xffffffffu) {
				char b[64];
				ssize_t got = read(0, b, sizeof b);
				for (ssize_t c = 0; c < got; c++)
					if (b[c] == '\n')
						counts();
				if (got <= 0) {
					counts();
					return 0;
				}
				continue;
			}
			ready((int)evs[e].data.u32);
		}
	}
}
