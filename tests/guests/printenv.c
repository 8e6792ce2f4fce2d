// With arguments: prints NAME=VALUE (or "NAME unset") for each. Without: the whole
// environment, one variable per line.
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 2) {
        for (char **e = environ; *e; e++) {
            printf("%s\n", *e);
        }
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        const char *value = getenv(argv[i]);
        if (value) {
            printf("%s=%s\n", argv[i], value);
        } else {
            printf("%s unset\n", argv[i]);
        }
    }
    return 0;
}
