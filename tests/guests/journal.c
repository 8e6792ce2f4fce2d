// A journal of numbered records, for crash tests:
//   journal append PATH COUNT   appends COUNT records after those PATH holds, each
//                               "record <n>\n" and each followed by fsync, printing
//                               "synced <n>" once that fsync returned
//   journal check PATH          prints the number of records; exits 1 if one is not
//                               "record <n>\n" with n counting from 0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// The number of well-formed records at the start of PATH, or -1 (and a message) if
// something else follows them.
static long count_records(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) {
            return 0;
        }
        fprintf(stderr, "error: open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[64], expected[64];
    long n = 0;
    while (fgets(line, sizeof line, f)) {
        snprintf(expected, sizeof expected, "record %ld\n", n);
        if (strcmp(line, expected) != 0) {
            fprintf(stderr, "error: record %ld is \"%s\"\n", n, line);
            fclose(f);
            return -1;
        }
        n++;
    }
    if (ferror(f)) {
        fprintf(stderr, "error: read %s: %s\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "check")) {
        long n = count_records(argv[2]);
        if (n < 0) {
            return 1;
        }
        printf("%ld\n", n);
        return 0;
    }
    if (argc != 4 || strcmp(argv[1], "append")) {
        fprintf(stderr, "usage: journal append PATH COUNT | journal check PATH\n");
        return 2;
    }
    long first = count_records(argv[2]);
    if (first < 0) {
        return 1;
    }
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
        fprintf(stderr, "error: open %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    long count = atol(argv[3]);
    for (long n = first; n < first + count; n++) {
        char record[64];
        int len = snprintf(record, sizeof record, "record %ld\n", n);
        if (write(fd, record, (size_t)len) != len || fsync(fd) != 0) {
            fprintf(stderr, "error: record %ld: %s\n", n, strerror(errno));
            return 1;
        }
        printf("synced %ld\n", n);
        fflush(stdout);
    }
    return close(fd) == 0 ? 0 : 1;
}
