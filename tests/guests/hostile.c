/* A hostile guest: argv[1] names the attack. Each attack that the host contains ends with
 * "contained: <what happened>" on stdout and status 0; a successful escape prints
 * "ESCAPED: ..." and exits with 99. Attacks that the runtime stops (recursion, floods) do
 * not return. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tries to read `path`; an escape if it can. */
static int try_read(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("contained: open %s: %s\n", path, strerror(errno));
        return 0;
    }
    char buf[64] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    printf("ESCAPED: read %zd bytes of %s: %s\n", n, path, buf);
    return 99;
}

/* Recursion without end; `limit` (never reached) keeps the compiler from refusing it. */
static int depth(long n, long limit) {
    volatile char frame[256];
    frame[0] = (char)n;
    if (n == limit) {
        return 0;
    }
    return depth(n + 1, limit) + frame[0];
}

int main(int argc, char **argv) {
    const char *attack = argc > 1 ? argv[1] : "";
    if (strcmp(attack, "read") == 0 && argc > 2) {
        return try_read(argv[2]);
    }
    if (strcmp(attack, "recurse") == 0) {
        return depth(0, -1);
    }
    if (strcmp(attack, "files") == 0 && argc > 2) {
        /* Opens one file of the preopen argv[2] again and again, keeping every descriptor. */
        long opened = 0;
        for (;;) {
            int fd = open(argv[2], O_RDONLY);
            if (fd < 0) {
                printf("contained: %ld files open, then: %s\n", opened, strerror(errno));
                return 0;
            }
            if (++opened > 100000) {
                printf("ESCAPED: %ld files open\n", opened);
                return 99;
            }
        }
    }
    if (strcmp(attack, "flood") == 0) {
        /* Writes blocks of '#' to the descriptors argv[2...] in turn (stdout when none are
         * given) until a write fails (the reader went away), then says why. */
        static char block[4096];
        memset(block, '#', sizeof block);
        int fds[8] = {1};
        int count = argc > 2 ? argc - 2 : 1;
        if (count > 8) {
            count = 8;
        }
        for (int i = 0; i < count && argc > 2; i++) {
            fds[i] = atoi(argv[2 + i]);
        }
        for (long written = 0;; written++) {
            if (write(fds[written % count], block, sizeof block) < 0) {
                fprintf(stderr, "contained: output failed after %ld writes: %s\n", written,
                        strerror(errno));
                return 0;
            }
        }
    }
    fprintf(stderr, "usage: hostile read PATH | recurse | files PATH | flood [FD...]\n");
    return 2;
}
