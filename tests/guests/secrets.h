// The secrets guest (secrets.c, and secrets_config.c for components with wasi:config/store).
// Prints a digest of each secret it is pointed at, never the secret itself, so that the
// tests can search everything the run leaves behind for the secret's bytes. Arguments:
//   env:NAME     the environment variable NAME
//   file:PATH    the file PATH (read whole; also tries to open it for writing)
//   config:KEY   wasi:config/store key KEY (the component build, secrets_config.c, only)
//   wait         reads one line from stdin before going on (ends the run at end of input)
// Each prints "ARG: sha256 HEX" or "ARG: absent"; file:PATH adds "ARG: write refused" or
// "ARG: writable". Exits 0.
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sha256.h"

static void print_sha256(const char *arg, const uint8_t *data, size_t len) {
    uint32_t h[8];
    sha256(data, len, h);
    printf("%s: sha256 ", arg);
    for (int i = 0; i < 8; i++) printf("%08x", h[i]);
    printf("\n");
}

static void file_secret(const char *arg, const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: absent\n", arg);
        return;
    }
    uint8_t *data = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            data = realloc(data, cap);
            if (!data) abort();
        }
        ssize_t n = read(fd, data + len, cap - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    print_sha256(arg, data, len);
    free(data);
    int writable = open(path, O_WRONLY);
    if (writable >= 0) {
        printf("%s: writable\n", arg);
        close(writable);
    } else {
        printf("%s: write refused\n", arg);
    }
}

#ifdef WITH_CONFIG
// wasi:config/store@0.2.0-rc.1 `get: func(key: string) -> result<option<string>, error>`,
// lowered by the canonical ABI: the key's pointer and length, then a return area of
// result tag (byte 0), option or error tag (byte 4), string pointer (8) and length (12).
__attribute__((import_module("wasi:config/store@0.2.0-rc.1"), import_name("get")))
extern void config_get(const char *key, size_t key_len, uint8_t *ret);

// Where the host puts returned strings.
__attribute__((export_name("cabi_realloc")))
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    if (new_size == 0) return (void *)align;
    void *moved = realloc(ptr, new_size);
    if (!moved) abort();
    return moved;
}

static void config_secret(const char *arg, const char *key) {
    _Alignas(4) uint8_t ret[16];
    config_get(key, strlen(key), ret);
    uint8_t *text;
    uint32_t len;
    memcpy(&text, ret + 8, sizeof text);
    memcpy(&len, ret + 12, sizeof len);
    if (ret[0] != 0) {
        printf("%s: error %.*s\n", arg, (int)len, (const char *)text);
    } else if (ret[4] == 0) {
        printf("%s: absent\n", arg);
    } else {
        print_sha256(arg, text, len);
    }
}
#endif

static int run_arguments(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strncmp(arg, "env:", 4) == 0) {
            const char *value = getenv(arg + 4);
            if (value) print_sha256(arg, (const uint8_t *)value, strlen(value));
            else printf("%s: absent\n", arg);
        } else if (strncmp(arg, "file:", 5) == 0) {
            file_secret(arg, arg + 5);
#ifdef WITH_CONFIG
        } else if (strncmp(arg, "config:", 7) == 0) {
            config_secret(arg, arg + 7);
#endif
        } else if (strcmp(arg, "wait") == 0) {
            fflush(stdout);
            char line[256];
            if (!fgets(line, sizeof line, stdin)) return 0;
        } else {
            printf("%s: unknown argument\n", arg);
            return 2;
        }
    }
    return 0;
}

#ifdef WITH_CONFIG
#include <wasi/api.h>

// A reactor has no main: wasi:cli/run calls this, which reads the arguments itself.
__attribute__((export_name("wasi:cli/run@0.2.0#run")))
int run(void) {
    __wasi_size_t argc, size;
    if (__wasi_args_sizes_get(&argc, &size) != 0) return 1;
    char **argv = calloc(argc + 1, sizeof(char *));
    char *text = malloc(size);
    if (!argv || !text || __wasi_args_get((uint8_t **)argv, (uint8_t *)text) != 0) return 1;
    int status = run_arguments((int)argc, argv);
    fflush(stdout);
    return status != 0;
}
#else
int main(int argc, char **argv) { return run_arguments(argc, argv); }
#endif
