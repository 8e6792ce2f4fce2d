/* A system-call-heavy guest: argv[1] rounds of open, fstat, read 4 KiB, pwrite 4 KiB and close
 * on a file in the preopened directory /data. Prints the bytes read in all. The file is
 * created once, so the loop measures system calls rather than the filesystem's journal. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000;
    static char block[4096];
    int fd = open("/data/scratch", O_CREAT | O_RDWR | O_TRUNC, 0600);
    if (fd < 0 || write(fd, block, sizeof block) != sizeof block) {
        perror("create");
        return 1;
    }
    close(fd);
    long total = 0;
    for (long i = 0; i < rounds; i++) {
        fd = open("/data/scratch", O_RDWR);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            perror("open");
            return 1;
        }
        ssize_t n = read(fd, block, sizeof block);
        if (n < 0 || pwrite(fd, block, (size_t)n, 0) != n) {
            perror("read/write");
            return 1;
        }
        total += n;
        close(fd);
    }
    printf("%ld\n", total);
    return 0;
}
