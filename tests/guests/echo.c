/* A blocking echo server on the listener named by argv[1] (default "ingest"): serves
 * argv[2] connections one after another (default: forever), echoing each until EOF. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fdfind.h"

int main(int argc, char **argv) {
    int listener = fd_by_name(argc > 1 ? argv[1] : "ingest");
    long count = argc > 2 ? atol(argv[2]) : -1;
    static char buf[65536];
    for (long served = 0; count < 0 || served < count; served++) {
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) {
            perror("accept");
            return 1;
        }
        ssize_t n;
        while ((n = read(conn, buf, sizeof buf)) > 0) {
            if (write_all(conn, buf, (size_t)n) < 0) {
                perror("write");
                break;
            }
        }
        if (n < 0) {
            perror("read");
        }
        close(conn);
    }
    return 0;
}
