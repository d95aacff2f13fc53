/*
 * Kernel-limit baseline for the FIFO echo benchmark: a plain byte echo in C.
 *
 *   cc -O2 -Wall -Wextra -pthread -o c_echo c_echo.c
 *   c_echo server IN OUT
 *   c_echo client pingpong  IN OUT COUNT SIZE
 *   c_echo client pipelined IN OUT COUNT SIZE
 *   c_echo client bulk      IN OUT TOTAL CHUNK [raw|length]
 *
 * pingpong SIZE is at most 65536: one message must fit in a pipe buffer.
 * The client prints {"ops":N,"bytes":B,"ns":T}, bytes counted one way.
 * Payloads are runs of "abc..z", which never contain "exit", so this client
 * also works against bench/seed_echo.py's server, which stops on that word.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

/* Both threads may fail at once: one write(2) per message, and _exit, not exit. */
static void die(const char *fmt, ...)
{
	char msg[512] = "error: ";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg + 7, sizeof msg - 8, fmt, ap);
	va_end(ap);
	strcat(msg, "\n");
	if (write(2, msg, strlen(msg)) < 0) {
		/* nowhere left to report it */
	}
	_exit(1);
}

static int open_or_die(const char *path, int flags)
{
	int fd;
	while ((fd = open(path, flags)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	return fd;
}

static void write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write: %s", strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
}

static size_t read_some(int fd, unsigned char *p, size_t n)
{
	for (;;) {
		ssize_t r = read(fd, p, n);
		if (r >= 0)
			return (size_t)r;
		if (errno != EINTR)
			die("read: %s", strerror(errno));
	}
}

static int server(const char *in, const char *out)
{
	/* Same order as the client, or both block forever in open(). */
	int rfd = open_or_die(in, O_RDONLY);
	int wfd = open_or_die(out, O_WRONLY);
	static unsigned char buf[BUF];
	size_t n;

	while ((n = read_some(rfd, buf, sizeof buf)) > 0)
		write_all(wfd, buf, n);
	return 0;
}

/*
 * The stream is one write's worth of bytes (len) sent over and over; ext holds
 * it repeated over len + BUF bytes so any read checks with a single memcmp.
 */
struct stream {
	int fd;
	const unsigned char *ext;
	size_t len;
	uint64_t total;
};

static unsigned char *make_ext(size_t len, int newline, int header)
{
	unsigned char *ext = malloc(len + BUF);
	if (!ext)
		die("out of memory");
	for (size_t i = 0; i < len; i++)
		ext[i] = 'a' + i % 26;
	if (newline)
		ext[len - 1] = '\n';
	if (header)
		for (int i = 0; i < 4; i++)
			ext[i] = (unsigned char)((uint64_t)(len - 4) >> (24 - 8 * i));
	for (size_t i = len; i < len + BUF; i++)
		ext[i] = ext[i - len];
	return ext;
}

static void *sender(void *arg)
{
	const struct stream *s = arg;
	for (uint64_t sent = 0; sent < s->total; sent += s->len)
		write_all(s->fd, s->ext, s->total - sent < s->len ? s->total - sent : s->len);
	return NULL;
}

static void receive(const struct stream *s)
{
	static unsigned char buf[BUF];
	uint64_t got = 0;

	while (got < s->total) {
		size_t want = s->total - got < BUF ? s->total - got : BUF;
		size_t n = read_some(s->fd, buf, want);
		if (n == 0)
			die("EOF after %llu of %llu bytes", (unsigned long long)got,
			    (unsigned long long)s->total);
		if (memcmp(s->ext + got % s->len, buf, n) != 0)
			die("echo differs within bytes %llu..%llu", (unsigned long long)got,
			    (unsigned long long)(got + n));
		got += n;
	}
}

static uint64_t num(const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v == 0)
		die("not a positive number: %s", s);
	return v;
}

static void usage(void)
{
	die("usage: c_echo server IN OUT | c_echo client pingpong|pipelined IN OUT COUNT SIZE"
	    " | c_echo client bulk IN OUT TOTAL CHUNK [raw|length]");
}

static int client(int argc, char **argv)
{
	const char *mode = argv[0];
	int pingpong = !strcmp(mode, "pingpong"), bulk = !strcmp(mode, "bulk");
	int header = argc == 6 && !strcmp(argv[5], "length");

	if (!(argc == 5 && (pingpong || bulk || !strcmp(mode, "pipelined"))) &&
	    !(argc == 6 && bulk && (header || !strcmp(argv[5], "raw"))))
		usage();

	uint64_t n = num(argv[3]), len = num(argv[4]);
	if (len > SIZE_MAX - BUF || (!bulk && n > UINT64_MAX / len))
		die("too large");
	/* A bigger message fills both pipes before the client starts reading. */
	if (pingpong && len > BUF)
		die("pingpong SIZE must be at most %d", BUF);
	if (header && (len <= 4 || len - 4 > UINT32_MAX || n % len))
		die("length mode needs 4 < CHUNK <= 2^32+4 and TOTAL a multiple of CHUNK");

	uint64_t total = bulk ? n : n * len;
	uint64_t ops = bulk ? (total + len - 1) / len : n;
	unsigned char *ext = make_ext(len, !bulk, header);
	int wfd = open_or_die(argv[1], O_WRONLY);
	int rfd = open_or_die(argv[2], O_RDONLY);
	struct timespec t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pingpong) {
		struct stream back = { rfd, ext, len, len };
		for (uint64_t i = 0; i < n; i++) {
			write_all(wfd, ext, len);
			receive(&back);
		}
	} else {
		struct stream out = { wfd, ext, len, total }, back = { rfd, ext, len, total };
		pthread_t t;
		int err = pthread_create(&t, NULL, sender, &out);
		if (err)
			die("pthread_create: %s", strerror(err));
		receive(&back);
		pthread_join(t, NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(wfd);
	close(rfd);
	free(ext);

	long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
	printf("{\"ops\":%llu,\"bytes\":%llu,\"ns\":%lld}\n", (unsigned long long)ops,
	       (unsigned long long)total, ns);
	return 0;
}

int main(int argc, char **argv)
{
	/* A vanished peer should be reported as EPIPE, not kill us silently. */
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "server"))
		return server(argv[2], argv[3]);
	if (argc >= 7 && !strcmp(argv[1], "client"))
		return client(argc - 2, argv + 2);
	usage();
	return 1;
}
