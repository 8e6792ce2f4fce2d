/* Writes argv[2] and a newline to the connect descriptor named argv[1], shuts down its
 * writing side, and copies everything the peer answers to stdout. */
#include <sys/socket.h>
#include <unistd.h>

#include "fdfind.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: client NAME MESSAGE\n");
        return 2;
    }
    int fd = fd_by_name(argv[1]);
    if (write_all(fd, argv[2], strlen(argv[2])) < 0 || write_all(fd, "\n", 1) < 0) {
        perror("write");
        return 1;
    }
    if (shutdown(fd, SHUT_WR) < 0) {
        perror("shutdown");
        return 1;
    }
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
    }
    if (n < 0) {
        perror("read");
        return 1;
    }
    return 0;
}
