/*
 * cbackends: the harness's tcp and http backends as one C event loop, for
 * capacity runs where the backends share the director's cores. The Go
 * backends (bench/backends.go) spend a goroutine, a deadline timer and a
 * buffered reader per connection; at 14,000 connections a second that was
 * about a core of this 2-core machine, taken from the director under test.
 * In production the real servers are other machines, so the less the
 * stand-ins cost here, the more the figures say about the director.
 *
 * Same addresses, same answers and the same line protocol on stdin/stdout
 * as the Go backends child (bench.BackendsMain):
 *   tcp:  accept, count, close.
 *   http: accept, count, read the request head (to an empty line, at most
 *         8 KiB), answer 200 "ok" with Connection: close, close. A
 *         connection that has not sent its head within 5 s is closed.
 *   stdin "count"  -> connections accepted so far
 *   stdin "kill K" -> close the next K listeners (their checks are refused
 *                     from then on); replies the instant in Unix nanoseconds
 *   stdin closed   -> exit
 *
 *	cbackends -kind tcp|http -n N -first F -port P
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 8192
#define CONN_TIMEOUT_MS 5000
#define TAG_LISTENER 1ULL
#define TAG_CONN 2ULL
/* A backend gets one check an interval from each checker: a short accept
 * queue is plenty. A long one is a hazard: when the backends fall behind
 * (a machine short of CPU), every listener's queue fills with connections
 * the checker has long closed, ~4 KB of kernel memory each; at 4,096 a
 * listener and 40,000 listeners that took 24 GB and the machine. At 16 a
 * backend that falls behind drops new connections instead (failed checks,
 * in the report), and 40,000 full queues hold at most 2.6 GB. */
#define BACKLOG 16
#define TAG_STDIN 3ULL

static const char http_ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"
			      "Connection: close\r\n\r\nok\n";

/* per connection, indexed by its descriptor: how much of the head came and
 * its last four bytes (enough to see an empty line across reads) */
struct conn {
	long long since;
	int got;
	char tail[4];
	char open;
};

static struct conn *conns;
static int nconns, epfd, is_http;
static int *listeners, nlisteners, killed;
static unsigned long long accepted;

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(int fd)
{
	conns[fd].open = 0;
	close(fd); /* closing drops it from the epoll set */
}

/* head_ended: the bytes seen so far end in "\r\n\r\n" or "\n\n" */
static int head_ended(const char t[4])
{
	return (t[2] == '\n' && t[3] == '\n') || memcmp(t, "\r\n\r\n", 4) == 0;
}

static void conn_read(int fd)
{
	struct conn *c = &conns[fd];
	char buf[2048];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n > 0) {
			/* the head ends at the first empty line; a check sends
			 * nothing after it, so looking at the end of what came
			 * is enough, as the Go backend's line reader does */
			for (ssize_t i = 0; i < n; i++) {
				memmove(c->tail, c->tail + 1, 3);
				c->tail[3] = buf[i];
				if (head_ended(c->tail)) {
					ssize_t w = write(fd, http_ok, sizeof http_ok - 1);
					(void)w; /* the client may be gone: nothing to do either way */
					conn_close(fd);
					return;
				}
			}
			c->got += (int)n;
			if (c->got > HEAD_MAX) {
				conn_close(fd);
				return;
			}
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			conn_close(fd);
		return;
	}
}

static void accept_all(int l)
{
	for (;;) {
		int fd = accept4(listeners[l], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return; /* EAGAIN, or the listener was killed */
		accepted++;
		if (!is_http || fd >= nconns) {
			close(fd);
			continue;
		}
		conns[fd] = (struct conn){ .since = mono_ms(), .open = 1 };
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_CONN << 32 | (unsigned)fd };
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(fd);
	}
}

static void command(void)
{
	static char line[256];
	static int len;
	char buf[256];
	ssize_t n = read(0, buf, sizeof buf);
	if (n <= 0)
		exit(0);
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] != '\n') {
			if (len < (int)sizeof line - 1)
				line[len++] = buf[i];
			continue;
		}
		line[len] = 0;
		len = 0;
		if (!strcmp(line, "count")) {
			printf("%llu\n", accepted);
		} else if (!strncmp(line, "kill ", 5)) {
			int k = atoi(line + 5);
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			for (; k > 0 && killed < nlisteners; k--, killed++)
				close(listeners[killed]);
			printf("%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
		} else {
			printf("error: unknown command\n");
		}
		fflush(stdout);
	}
}

int main(int argc, char **argv)
{
	const char *kind = "tcp";
	int n = 0, first = 0, port = 8080;
	/* A peer that reset the connection makes a write fail with EPIPE;
	 * without this the signal would end the process, seen on a loaded
	 * machine as the harness's "broken pipe" */
	signal(SIGPIPE, SIG_IGN);
	for (int a = 1; a + 1 < argc; a += 2) {
		const char *k = argv[a], *v = argv[a + 1];
		if (!strcmp(k, "-kind")) kind = v;
		else if (!strcmp(k, "-n")) n = atoi(v);
		else if (!strcmp(k, "-first")) first = atoi(v);
		else if (!strcmp(k, "-port")) port = atoi(v);
		else { fprintf(stderr, "cbackends: unknown flag %s\n", k); return 2; }
	}
	if (n < 1 || first < 0 || port < 1 || port > 65535 || (strcmp(kind, "tcp") && strcmp(kind, "http"))) {
		fprintf(stderr, "cbackends: want -kind tcp|http, -n > 0, -first >= 0, -port 1-65535\n");
		return 2;
	}
	is_http = !strcmp(kind, "http");
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	nconns = rl.rlim_cur > 1u << 20 ? 1 << 20 : (int)rl.rlim_cur;
	conns = calloc((size_t)nconns, sizeof *conns);
	listeners = calloc((size_t)n, sizeof *listeners);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	for (int i = first; i < first + n; i++) {
		int m = i / 254 * 256 + i % 254 + 1; /* as bench.backendAddr */
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)port) };
		sa.sin_addr.s_addr = htonl(0x7f000000u | (unsigned)(1 + (m >> 16)) << 16 | (unsigned)(m & 0xffff));
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, BACKLOG) < 0) {
			fprintf(stderr, "cbackends: backend %d on %s:%d: %s (raise the open-files limit, ulimit -n, for large N)\n",
				i + 1, inet_ntoa(sa.sin_addr), port, strerror(errno));
			return 1;
		}
		listeners[nlisteners] = fd;
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTENER << 32 | (unsigned)nlisteners };
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
		nlisteners++;
	}
	struct epoll_event stdin_ev = { .events = EPOLLIN, .data.u64 = TAG_STDIN << 32 };
	epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &stdin_ev);
	printf("ready\n");
	fflush(stdout);

	long long swept = mono_ms();
	struct epoll_event evs[256];
	for (;;) {
		int k = epoll_wait(epfd, evs, 256, 1000);
		for (int e = 0; e < k; e++) {
			unsigned long long tag = evs[e].data.u64 >> 32;
			unsigned idx = (unsigned)evs[e].data.u64;
			if (tag == TAG_LISTENER)
				accept_all((int)idx);
			else if (tag == TAG_CONN)
				conn_read((int)idx);
			else
				command();
		}
		long long now = mono_ms();
		if (is_http && now - swept >= 1000) {
			/* once a second: close heads that did not come in time */
			for (int fd = 0; fd < nconns; fd++)
				if (conns[fd].open && now - conns[fd].since > CONN_TIMEOUT_MS)
					conn_close(fd);
			swept = now;
		}
	}
}
