/*
 * loopback.h - socket helpers shared by the unit tests that start a listener
 * on loopback (never any other address).
 */
#ifndef RG_TEST_LOOPBACK_H
#define RG_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* free_port - a TCP port on 127.0.0.1 the kernel just handed out and that
 * nothing listens on now (a later bind may still lose it: tests retry). */
static inline unsigned free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

#endif
