/* httpload.h: what the benchmarks' load generators (bench/loadgen.c,
 * bench/eventload.c) share: the monotonic clock, fatal errors, opening a
 * kept-alive loopback connection on an epoll set, writing a request without
 * blocking, and finding a complete HTTP/1.1 answer in a read buffer.
 *
 * Header only, static functions: each generator is one C file that its
 * bench script compiles with the system compiler. Set httpload_prog to the
 * program's name for the error messages.
 */
#ifndef CREDITD_BENCH_HTTPLOAD_H
#define CREDITD_BENCH_HTTPLOAD_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *httpload_prog = "httpload";

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", httpload_prog, what, strerror(errno));
	exit(2);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* A TCP connection to host:port (TCP_NODELAY), added to epfd for reading
 * with `ptr` as its data; exits on failure. */
static int
httpload_open(const char *host, int port, int epfd, void *ptr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = ptr};
	int one = 1, fd;

	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "%s: bad host %s\n", httpload_prog, host);
		exit(2);
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
		die("epoll_ctl");
	return fd;
}

/* Writes buf[*off..len) to fd as far as the socket takes it. 0: all
 * written; 1: the socket is full, fd now waits for EPOLLOUT too (the
 * caller writes the rest then and goes back to EPOLLIN); -1: failed. */
static int
httpload_write(int epfd, int fd, void *ptr, const char *buf, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = write(fd, buf + *off, len - *off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = ptr};
			epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
			return 1;
		}
		if (n <= 0)
			return -1;
		*off += (size_t)n;
	}
	return 0;
}

/* The first answer in buf[0..len): 1 when it is complete, with its status,
 * the length of its head (the body starts there) and of its body
 * (Content-Length); 0 when more is needed; -1 when it is not an HTTP/1.x
 * answer with a Content-Length. */
static int
httpload_answer(const char *buf, size_t len, int *status, size_t *hlen, size_t *clen)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	long n = -1;

	if (end == NULL)
		return 0;
	*hlen = (size_t)(end - buf) + 4;
	if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0)
		return -1;
	*status = atoi(buf + 9);
	for (const char *p = buf; p < end; p++) {
		if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
			n = strtol(p + 16, NULL, 10);
			break;
		}
	}
	if (n < 0)
		return -1;
	*clen = (size_t)n;
	return len >= *hlen + *clen;
}

#endif
