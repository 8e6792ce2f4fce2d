/* A single-threaded echo server that serves many connections at once with poll() and
 * non-blocking sockets, on the listener "ingest". It exits after argv[1] connections have
 * closed (default: never). A client that sends "quit\n" as its whole message ends it too. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdfind.h"

#define MAX_CLIENTS 1024

struct client {
    int fd;
    char pending[16384];
    size_t len, off;
};

static struct client clients[MAX_CLIENTS];
static struct pollfd fds[MAX_CLIENTS + 1];

int main(int argc, char **argv) {
    int listener = fd_by_name("ingest");
    long limit = argc > 1 ? atol(argv[1]) : -1;
    long closed = 0;
    int count = 0;
    while (limit < 0 || closed < limit) {
        fds[0].fd = listener;
        fds[0].events = count < MAX_CLIENTS ? POLLIN : 0;
        for (int i = 0; i < count; i++) {
            fds[i + 1].fd = clients[i].fd;
            fds[i + 1].events = clients[i].len > clients[i].off ? POLLOUT : POLLIN;
            fds[i + 1].revents = 0;
        }
        if (poll(fds, (nfds_t)count + 1, 5000) < 0) {
            perror("poll");
            return 1;
        }
        if (fds[0].revents & POLLIN) {
            int conn = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
            if (conn >= 0) {
                clients[count].fd = conn;
                clients[count].len = clients[count].off = 0;
                count++;
            } else if (errno != EAGAIN) {
                perror("accept");
            }
        }
        for (int i = 0; i < count; i++) {
            short revents = fds[i + 1].revents;
            struct client *c = &clients[i];
            int done = 0;
            if (revents & POLLOUT) {
                ssize_t n = write(c->fd, c->pending + c->off, c->len - c->off);
                if (n > 0) {
                    c->off += (size_t)n;
                } else if (n < 0 && errno != EAGAIN) {
                    done = 1;
                }
            } else if (revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = read(c->fd, c->pending, sizeof c->pending);
                if (n > 0) {
                    if (n == 5 && memcmp(c->pending, "quit\n", 5) == 0) {
                        return 0;
                    }
                    c->len = (size_t)n;
                    c->off = 0;
                } else if (n == 0 || errno != EAGAIN) {
                    done = 1;
                }
            }
            if (done) {
                close(c->fd);
                closed++;
                clients[i] = clients[count - 1];
                fds[i + 1] = fds[count];
                count--;
                i--;
            }
        }
    }
    return 0;
}
