// Disk workloads on a file, timed by the guest itself (so that start-up and attestation
// are not counted); prints the seconds the work took.
//   disk write PATH MIB          writes MIB MiB sequentially in 1 MiB writes, then fsync
//   disk read PATH               reads the whole file sequentially in 1 MiB reads
//   disk random PATH OPS         OPS operations on the existing file, alternating a 4 KiB
//                                read and a 4 KiB write at random aligned offsets, with an
//                                fsync after every 64 writes and at the end
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int fail(const char *what) {
    fprintf(stderr, "error: %s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    static char buffer[1 << 20];
    if (argc < 3) {
        fprintf(stderr, "usage: disk write PATH MIB | read PATH | random PATH OPS\n");
        return 2;
    }
    const char *mode = argv[1], *path = argv[2];
    double start = now();
    if (!strcmp(mode, "write") && argc == 4) {
        long mib = atol(argv[3]);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return fail("open");
        for (long i = 0; i < mib; i++) {
            memset(buffer, (int)(i & 0xff), sizeof buffer);
            if (write(fd, buffer, sizeof buffer) != (ssize_t)sizeof buffer) return fail("write");
        }
        if (fsync(fd) != 0 || close(fd) != 0) return fail("fsync");
    } else if (!strcmp(mode, "read")) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) return fail("open");
        unsigned long long total = 0, sum = 0;
        ssize_t n;
        while ((n = read(fd, buffer, sizeof buffer)) > 0) {
            total += (unsigned long long)n;
            sum += (unsigned char)buffer[0];
        }
        if (n < 0) return fail("read");
        close(fd);
        fprintf(stderr, "read %llu bytes (%llu)\n", total, sum);
    } else if (!strcmp(mode, "random") && argc == 4) {
        long ops = atol(argv[3]);
        int fd = open(path, O_RDWR);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) return fail("open");
        long blocks = (long)(st.st_size / 4096);
        if (blocks == 0) return fail("empty file");
        unsigned long long state = 88172645463325252ULL;
        long writes = 0;
        for (long i = 0; i < ops; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            off_t offset = (off_t)(state % (unsigned long long)blocks) * 4096;
            if (i % 2 == 0) {
                if (pread(fd, buffer, 4096, offset) != 4096) return fail("pread");
            } else {
                memset(buffer, (int)(i & 0xff), 4096);
                if (pwrite(fd, buffer, 4096, offset) != 4096) return fail("pwrite");
                if (++writes % 64 == 0 && fsync(fd) != 0) return fail("fsync");
            }
        }
        if (fsync(fd) != 0 || close(fd) != 0) return fail("fsync");
    } else {
        fprintf(stderr, "usage: disk write PATH MIB | read PATH | random PATH OPS\n");
        return 2;
    }
    printf("%.6f\n", now() - start);
    return 0;
}
