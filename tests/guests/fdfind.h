/* Finds a descriptor by its name in FD_NAMES, as Enarx programs do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int fd_by_name(const char *name) {
    const char *names = getenv("FD_NAMES");
    if (names == NULL) {
        fprintf(stderr, "FD_NAMES is not set\n");
        exit(2);
    }
    int fd = 0;
    size_t len = strlen(name);
    for (const char *p = names;; fd++) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) {
            return fd;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    fprintf(stderr, "no descriptor named `%s` in FD_NAMES=%s\n", name, names);
    exit(2);
}

/* Writes all of buf; returns 0, or -1 with errno set. */
static inline int write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}
