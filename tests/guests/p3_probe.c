// A WASI 0.3 command (world command-p3 in wit-p3/world.wit) on the component model's
// async ABI, using each part of WASI 0.3 once and printing one line per part on stdout:
//   args: ARG...                 (wasi:cli/environment, the program's name left out)
//   env: VALUE                   (the variable KEEP_GREETING, or `unset`)
//   read: TEXT                   (in.txt of the first preopened directory)
//   wrote: N bytes               (out.txt there, written through a stream, then stat-ed)
//   clock: ok                    (the system clock is past 2020)
//   slept: ok                    (monotonic-clock wait-for 20 ms took at least that)
//   random: N bytes              (wasi:random, not all zero)
//   connect IP:PORT: RESULT      (for a first argument IP:PORT: a TCP connection, `ok`,
//                                 `denied` or `error CODE`)
//   fetch URL: RESULT            (for a first argument http(s)://HOST:PORT/PATH: a GET with
//                                 wasi:http/client, `STATUS BODY`, `denied` or `error CODE`)
// Then it returns ok. It calls no preview-1 function, so its component is WASI 0.3 alone.
// keep-guest: wasi-p3 command-p3
#include <stdlib.h>
#include <string.h>

#include "command_p3.h"

// Blocks until `waitable` has news; returns the event's code.
static uint32_t wait_for(uint32_t waitable) {
    command_p3_waitable_set_t set = command_p3_waitable_set_new();
    command_p3_waitable_join(waitable, set);
    command_p3_event_t event;
    command_p3_waitable_set_wait(set, &event);
    command_p3_waitable_join(waitable, 0);
    command_p3_waitable_set_drop(set);
    return event.code;
}

// The status of a stream or future operation on `end`, waited for if it blocked.
static uint32_t finish(uint32_t end, command_p3_waitable_status_t status) {
    return status == COMMAND_P3_WAITABLE_STATUS_BLOCKED ? wait_for(end) : status;
}

// Waits for an async import's call to return.
static void await_call(command_p3_subtask_status_t status) {
    if (COMMAND_P3_SUBTASK_STATE(status) == COMMAND_P3_SUBTASK_RETURNED) return;
    command_p3_subtask_t subtask = COMMAND_P3_SUBTASK_HANDLE(status);
    while (wait_for(subtask) != COMMAND_P3_SUBTASK_RETURNED) {
    }
    command_p3_subtask_drop(subtask);
}

// Writes all of `bytes` to a `stream<u8>` unless its reader goes away first.
static void write_all(uint32_t out, const uint8_t *bytes, size_t len) {
    while (len > 0) {
        uint32_t status = finish(out, wasi_cli_stdin_stream_u8_write(out, bytes, len));
        size_t written = COMMAND_P3_WAITABLE_COUNT(status);
        bytes += written;
        len -= written;
        if (COMMAND_P3_WAITABLE_STATE(status) != COMMAND_P3_WAITABLE_COMPLETED) return;
    }
}

// The writer of the stream that is stdout.
static wasi_cli_stdin_stream_u8_writer_t stdout_writer;

static void print(const char *text) {
    write_all(stdout_writer, (const uint8_t *)text, strlen(text));
}

static void print_bytes(const uint8_t *bytes, size_t len) { write_all(stdout_writer, bytes, len); }

static void print_number(unsigned long long number) {
    char digits[24];
    size_t len = 0;
    do {
        digits[sizeof digits - ++len] = (char)('0' + number % 10);
        number /= 10;
    } while (number > 0);
    print_bytes((const uint8_t *)digits + sizeof digits - len, len);
}

static void print_arguments(void) {
    command_p3_list_string_t arguments;
    wasi_cli_environment_get_arguments(&arguments);
    print("args:");
    for (size_t i = 1; i < arguments.len; i++) {
        print(" ");
        print_bytes(arguments.ptr[i].ptr, arguments.ptr[i].len);
    }
    print("\n");
    command_p3_list_string_free(&arguments);
}

static void print_greeting(void) {
    command_p3_list_tuple2_string_string_t variables;
    wasi_cli_environment_get_environment(&variables);
    const char *name = "KEEP_GREETING";
    print("env: ");
    bool found = false;
    for (size_t i = 0; i < variables.len && !found; i++) {
        command_p3_tuple2_string_string_t *variable = &variables.ptr[i];
        if (variable->f0.len == strlen(name) && memcmp(variable->f0.ptr, name, strlen(name)) == 0) {
            print_bytes(variable->f1.ptr, variable->f1.len);
            found = true;
        }
    }
    print(found ? "\n" : "unset\n");
    command_p3_list_tuple2_string_string_free(&variables);
}

// Opens `path` in `dir`, or returns false.
static bool open_at(wasi_filesystem_types_own_descriptor_t dir, const char *path,
                    wasi_filesystem_types_open_flags_t open_flags,
                    wasi_filesystem_types_descriptor_flags_t flags,
                    wasi_filesystem_types_own_descriptor_t *file) {
    wasi_filesystem_types_method_descriptor_open_at_args_t args = {
        .self = wasi_filesystem_types_borrow_descriptor(dir),
        .path_flags = 0,
        .path = {.ptr = (uint8_t *)path, .len = strlen(path)},
        .open_flags = open_flags,
        .flags = flags,
    };
    wasi_filesystem_types_result_own_descriptor_error_code_t result;
    await_call(wasi_filesystem_types_method_descriptor_open_at(&args, &result));
    if (result.is_err) return false;
    *file = result.val.ok;
    return true;
}

// Waits for a filesystem future's result, and drops it; returns whether it was ok.
static bool await_outcome(wasi_filesystem_types_future_result_void_error_code_t future) {
    wasi_filesystem_types_result_void_error_code_t result = {.is_err = true};
    finish(future, wasi_filesystem_types_future_result_void_error_code_read(future, &result));
    wasi_filesystem_types_future_result_void_error_code_drop_readable(future);
    return !result.is_err;
}

static void read_file(wasi_filesystem_types_own_descriptor_t dir) {
    print("read: ");
    wasi_filesystem_types_own_descriptor_t file;
    if (!open_at(dir, "in.txt", 0, WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_READ, &file)) {
        print("cannot open\n");
        return;
    }
    wasi_filesystem_types_tuple2_stream_u8_future_result_void_error_code_t contents;
    wasi_filesystem_types_method_descriptor_read_via_stream(
        wasi_filesystem_types_borrow_descriptor(file), 0, &contents);
    static uint8_t buffer[4096];
    for (;;) {
        uint32_t status = finish(contents.f0, wasi_filesystem_types_stream_u8_read(
                                                  contents.f0, buffer, sizeof buffer));
        print_bytes(buffer, COMMAND_P3_WAITABLE_COUNT(status));
        if (COMMAND_P3_WAITABLE_STATE(status) != COMMAND_P3_WAITABLE_COMPLETED) break;
    }
    wasi_filesystem_types_stream_u8_drop_readable(contents.f0);
    if (!await_outcome(contents.f1)) print(" (read failed)");
    wasi_filesystem_types_descriptor_drop_own(file);
}

static void write_file(wasi_filesystem_types_own_descriptor_t dir) {
    print("wrote: ");
    wasi_filesystem_types_own_descriptor_t file;
    if (!open_at(dir, "out.txt",
                 WASI_FILESYSTEM_TYPES_OPEN_FLAGS_CREATE | WASI_FILESYSTEM_TYPES_OPEN_FLAGS_TRUNCATE,
                 WASI_FILESYSTEM_TYPES_DESCRIPTOR_FLAGS_WRITE, &file)) {
        print("cannot create\n");
        return;
    }
    wasi_filesystem_types_stream_u8_writer_t writer;
    wasi_filesystem_types_stream_u8_t data = wasi_filesystem_types_stream_u8_new(&writer);
    wasi_filesystem_types_future_result_void_error_code_t written =
        wasi_filesystem_types_method_descriptor_write_via_stream(
            wasi_filesystem_types_borrow_descriptor(file), data, 0);
    const char *text = "written by WASI 0.3\n";
    write_all(writer, (const uint8_t *)text, strlen(text));
    wasi_filesystem_types_stream_u8_drop_writable(writer);
    bool ok = await_outcome(written);
    wasi_filesystem_types_descriptor_drop_own(file);
    wasi_filesystem_types_result_descriptor_stat_error_code_t stat;
    command_p3_string_t path = {.ptr = (uint8_t *)"out.txt", .len = 7};
    await_call(wasi_filesystem_types_method_descriptor_stat_at(
        wasi_filesystem_types_borrow_descriptor(dir), 0, path, &stat));
    if (!ok || stat.is_err) {
        print("failed\n");
        return;
    }
    print_number(stat.val.ok.size);
    print(" bytes\n");
}

static void use_files(void) {
    wasi_filesystem_preopens_list_tuple2_own_descriptor_string_t dirs;
    wasi_filesystem_preopens_get_directories(&dirs);
    if (dirs.len == 0) {
        print("read: no directory\nwrote: no directory\n");
    } else {
        read_file(dirs.ptr[0].f0);
        write_file(dirs.ptr[0].f0);
    }
    wasi_filesystem_preopens_list_tuple2_own_descriptor_string_free(&dirs);
}

static void use_clocks(void) {
    wasi_clocks_system_clock_instant_t now;
    wasi_clocks_system_clock_now(&now);
    // 2020-01-01.
    print(now.seconds > 1577836800 ? "clock: ok\n" : "clock: wrong\n");
    const uint64_t nap = 20 * 1000 * 1000;
    wasi_clocks_monotonic_clock_mark_t start = wasi_clocks_monotonic_clock_now();
    await_call(wasi_clocks_monotonic_clock_wait_for(nap));
    wasi_clocks_monotonic_clock_mark_t end = wasi_clocks_monotonic_clock_now();
    print(end - start >= nap ? "slept: ok\n" : "slept: too short\n");
}

static void use_random(void) {
    command_p3_list_u8_t bytes;
    wasi_random_random_get_random_bytes(16, &bytes);
    bool zero = true;
    for (size_t i = 0; i < bytes.len; i++) zero = zero && bytes.ptr[i] == 0;
    print("random: ");
    print_number(bytes.len);
    print(zero ? " zero bytes\n" : " bytes\n");
    command_p3_list_u8_free(&bytes);
}

// `denied` for access-denied, otherwise `error CODE`.
static void print_error(uint8_t code) {
    if (code == WASI_SOCKETS_TYPES_ERROR_CODE_ACCESS_DENIED) {
        print("denied\n");
        return;
    }
    print("error ");
    print_number(code);
    print("\n");
}

// Connects to `target` (IPv4 `A.B.C.D:PORT`).
static void use_sockets(const command_p3_string_t *target) {
    char text[32];
    size_t len = target->len < sizeof text - 1 ? target->len : sizeof text - 1;
    memcpy(text, target->ptr, len);
    text[len] = 0;
    print("connect ");
    print(text);
    print(": ");
    unsigned long parts[5];
    char *at = text;
    for (int i = 0; i < 5; i++) {
        parts[i] = strtoul(at, &at, 10);
        if (*at == '.' || *at == ':') at++;
    }
    wasi_sockets_types_own_tcp_socket_t socket;
    wasi_sockets_types_error_code_t error;
    if (!wasi_sockets_types_static_tcp_socket_create(WASI_SOCKETS_TYPES_IP_ADDRESS_FAMILY_IPV4,
                                                     &socket, &error)) {
        print_error(error.tag);
        return;
    }
    wasi_sockets_types_method_tcp_socket_connect_args_t args = {
        .self = wasi_sockets_types_borrow_tcp_socket(socket),
        .remote_address = {
            .tag = WASI_SOCKETS_TYPES_IP_SOCKET_ADDRESS_IPV4,
            .val = {.ipv4 = {.port = (uint16_t)parts[4],
                             .address = {(uint8_t)parts[0], (uint8_t)parts[1],
                                         (uint8_t)parts[2], (uint8_t)parts[3]}}}}};
    wasi_sockets_types_result_void_error_code_t result;
    await_call(wasi_sockets_types_method_tcp_socket_connect(&args, &result));
    if (result.is_err)
        print_error(result.val.err.tag);
    else
        print("ok\n");
    wasi_sockets_types_tcp_socket_drop_own(socket);
}

// GETs `url` (scheme://authority/path) with wasi:http/client.
static void fetch(const command_p3_string_t *url) {
    print("fetch ");
    print_bytes(url->ptr, url->len);
    print(": ");
    const char *text = (const char *)url->ptr;
    const char *end = text + url->len;
    const char *authority = text;
    while (authority + 3 <= end && memcmp(authority, "://", 3) != 0) authority++;
    authority += 3;
    const char *path = authority;
    while (path < end && *path != '/') path++;

    wasi_http_types_future_result_option_own_trailers_error_code_writer_t no_trailers;
    wasi_http_types_future_result_option_own_trailers_error_code_t trailers =
        wasi_http_types_future_result_option_own_trailers_error_code_new(&no_trailers);
    wasi_http_types_tuple2_own_request_future_result_void_error_code_t request;
    wasi_http_types_static_request_new(wasi_http_types_constructor_fields(), NULL, trailers,
                                       NULL, &request);
    wasi_http_types_future_result_void_error_code_drop_readable(request.f1);
    wasi_http_types_borrow_request_t borrowed = wasi_http_types_borrow_request(request.f0);
    wasi_http_types_scheme_t scheme = {
        .tag = url->len > 5 && memcmp(text, "https", 5) == 0 ? WASI_HTTP_TYPES_SCHEME_HTTPS
                                                             : WASI_HTTP_TYPES_SCHEME_HTTP};
    wasi_http_types_method_request_set_scheme(borrowed, &scheme);
    command_p3_string_t authority_text = {.ptr = (uint8_t *)authority,
                                          .len = (size_t)(path - authority)};
    wasi_http_types_method_request_set_authority(borrowed, &authority_text);
    command_p3_string_t path_text = {.ptr = (uint8_t *)(path < end ? path : "/"),
                                     .len = path < end ? (size_t)(end - path) : 1};
    wasi_http_types_method_request_set_path_with_query(borrowed, &path_text);
    // The host reads the (absent) trailers while it sends the request: the write is
    // waited for after the call.
    wasi_http_types_result_option_own_trailers_error_code_t none = {.is_err = false};
    bool trailers_pending =
        wasi_http_types_future_result_option_own_trailers_error_code_write(no_trailers, &none) ==
        COMMAND_P3_WAITABLE_STATUS_BLOCKED;

    wasi_http_client_result_own_response_error_code_t result;
    await_call(wasi_http_client_send(request.f0, &result));
    if (trailers_pending) wait_for(no_trailers);
    wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(no_trailers);
    if (result.is_err) {
        if (result.val.err.tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED) {
            print("denied\n");
        } else {
            print("error ");
            print_number(result.val.err.tag);
            print("\n");
        }
        wasi_http_types_error_code_free(&result.val.err);
        return;
    }
    wasi_http_types_own_response_t response = result.val.ok;
    print_number(wasi_http_types_method_response_get_status_code(
        wasi_http_types_borrow_response(response)));
    print(" ");
    wasi_http_types_future_result_void_error_code_writer_t outcome;
    wasi_http_types_future_result_void_error_code_t outcome_reader =
        wasi_http_types_future_result_void_error_code_new(&outcome);
    wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t body;
    wasi_http_types_static_response_consume_body(response, outcome_reader, &body);
    static uint8_t buffer[4096];
    for (;;) {
        uint32_t status =
            finish(body.f0, wasi_http_types_stream_u8_read(body.f0, buffer, sizeof buffer));
        print_bytes(buffer, COMMAND_P3_WAITABLE_COUNT(status));
        if (COMMAND_P3_WAITABLE_STATE(status) != COMMAND_P3_WAITABLE_COMPLETED) break;
    }
    wasi_http_types_stream_u8_drop_readable(body.f0);
    wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(body.f1);
    wasi_http_types_result_void_error_code_t ok = {.is_err = false};
    finish(outcome, wasi_http_types_future_result_void_error_code_write(outcome, &ok));
    wasi_http_types_future_result_void_error_code_drop_writable(outcome);
}

command_p3_callback_code_t exports_wasi_cli_run_run(void) {
    wasi_cli_stdin_stream_u8_t stdout_reader = wasi_cli_stdin_stream_u8_new(&stdout_writer);
    wasi_cli_stdout_future_result_void_error_code_t stdout_done =
        wasi_cli_stdout_write_via_stream(stdout_reader);
    print_arguments();
    print_greeting();
    use_files();
    use_clocks();
    use_random();
    command_p3_list_string_t arguments;
    wasi_cli_environment_get_arguments(&arguments);
    if (arguments.len > 1 && arguments.ptr[1].len > 4 &&
        memcmp(arguments.ptr[1].ptr, "http", 4) == 0)
        fetch(&arguments.ptr[1]);
    else if (arguments.len > 1 && memchr(arguments.ptr[1].ptr, ':', arguments.ptr[1].len))
        use_sockets(&arguments.ptr[1]);
    command_p3_list_string_free(&arguments);

    wasi_cli_stdin_stream_u8_drop_writable(stdout_writer);
    wasi_cli_stdout_result_void_error_code_t written;
    finish(stdout_done, wasi_cli_stdout_future_result_void_error_code_read(stdout_done, &written));
    wasi_cli_stdout_future_result_void_error_code_drop_readable(stdout_done);
    exports_wasi_cli_run_result_void_void_t ok = {.is_err = false};
    exports_wasi_cli_run_run_return(ok);
    return COMMAND_P3_CALLBACK_CODE_EXIT;
}

// Never called: the export does all its waiting itself, in `waitable-set.wait`.
command_p3_callback_code_t exports_wasi_cli_run_run_callback(command_p3_event_t *event) {
    (void)event;
    abort();
}
