// File operations driven by arguments, one operation per run:
//   write PATH TEXT | append PATH TEXT | read PATH | mkdir PATH | remove PATH | list DIR
// Prints "error: OP PATH: <strerror>" and exits 1 when the operation fails.
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *op, const char *path) {
    fprintf(stderr, "error: %s %s: %s\n", op, path, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: fsops OP PATH [TEXT]\n");
        return 2;
    }
    const char *op = argv[1], *path = argv[2];
    if ((!strcmp(op, "write") || !strcmp(op, "append")) && argc == 4) {
        FILE *f = fopen(path, op[0] == 'w' ? "w" : "a");
        if (!f || fputs(argv[3], f) < 0 || fclose(f) != 0) {
            return fail(op, path);
        }
        return 0;
    }
    if (!strcmp(op, "read")) {
        FILE *f = fopen(path, "r");
        if (!f) {
            return fail(op, path);
        }
        char buffer[4096];
        size_t n;
        while ((n = fread(buffer, 1, sizeof buffer, f)) > 0) {
            fwrite(buffer, 1, n, stdout);
        }
        if (ferror(f)) {
            return fail(op, path);
        }
        fclose(f);
        return 0;
    }
    if (!strcmp(op, "mkdir")) {
        return mkdir(path, 0755) == 0 ? 0 : fail(op, path);
    }
    if (!strcmp(op, "remove")) {
        return unlink(path) == 0 ? 0 : fail(op, path);
    }
    if (!strcmp(op, "list")) {
        DIR *d = opendir(path);
        if (!d) {
            return fail(op, path);
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                printf("%s\n", e->d_name);
            }
        }
        closedir(d);
        return 0;
    }
    fprintf(stderr, "unknown operation %s\n", op);
    return 2;
}
