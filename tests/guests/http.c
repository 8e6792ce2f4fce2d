/* An HTTP/1.1 responder on the listener "web": answers argv[1] requests (default: forever)
 * with a fixed page, then closes each connection. */
#include <sys/socket.h>
#include <unistd.h>

#include "fdfind.h"

int main(int argc, char **argv) {
    int listener = fd_by_name("web");
    long count = argc > 1 ? atol(argv[1]) : -1;
    const char body[] = "hello from a keep\n";
    char response[256];
    int len = snprintf(response, sizeof response,
                       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s",
                       sizeof body - 1, body);
    for (long served = 0; count < 0 || served < count; served++) {
        int conn = accept(listener, NULL, NULL);
        if (conn < 0) {
            perror("accept");
            return 1;
        }
        char request[8192];
        size_t got = 0;
        while (got < sizeof request - 1) {
            ssize_t n = recv(conn, request + got, sizeof request - 1 - got, 0);
            if (n <= 0) {
                break;
            }
            got += (size_t)n;
            request[got] = 0;
            if (strstr(request, "\r\n\r\n") != NULL) {
                write_all(conn, response, (size_t)len);
                break;
            }
        }
        shutdown(conn, SHUT_WR);
        close(conn);
    }
    return 0;
}
