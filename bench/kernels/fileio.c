/* A system-call-heavy guest: argv[1] rounds of file I/O on /data/scratch, in the preopened
 * directory /data. Prints the bytes read in all. argv[2] picks the pattern:
 *   reopen (default): open, fstat, read 4 KiB, pwrite 4 KiB, close: every round opens a path;
 *   stream: read 4 KiB and pwrite 4 KiB on a descriptor opened once.
 * The file is created once, so the loop measures system calls rather than the filesystem's
 * journal. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char block[4096];

static int round_trip(int fd) {
    ssize_t n = pread(fd, block, sizeof block, 0);
    if (n < 0 || pwrite(fd, block, (size_t)n, 0) != n) {
        perror("read/write");
        exit(1);
    }
    return (int)n;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000;
    int reopen = argc < 3 || strcmp(argv[2], "stream") != 0;
    int fd = open("/data/scratch", O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0 || write(fd, block, sizeof block) != sizeof block) {
        perror("create");
        return 1;
    }
    long total = 0;
    for (long i = 0; i < rounds; i++) {
        if (reopen) {
            close(fd);
            fd = open("/data/scratch", O_RDWR);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) < 0) {
                perror("open");
                return 1;
            }
        }
        total += round_trip(fd);
    }
    close(fd);
    printf("%ld\n", total);
    return 0;
}
