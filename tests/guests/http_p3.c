// A WASI 0.3 wasi:http service (world http-service-p3 in wit-p3/world.wit), written
// against the component model's async ABI (wit-bindgen's C bindings, callback-lifted
// export) and blocking in `waitable-set.wait` where it must wait. It answers:
// - POST or PUT: the request's body streamed back, its trailers passed on as the
//   response's, and its `x-` headers and `trailer` header (HTTP/1.1 sends only the
//   trailers it declares) copied into the response;
// - GET /status/NNN: status NNN;
// - GET /count: the number of requests this instance has answered (a server with a fresh
//   instance per request always says 1);
// - GET /trailers: a body, then the trailer `x-checksum: done`;
// - GET /fetch?URL: `STATUS BODY` of a GET of URL sent with wasi:http/client (or `denied`,
//   or `error CODE`);
// - GET /trap traps and GET /bomb allocates (and touches) memory until none is left, both
//   before answering; GET /spin answers 200, then computes forever;
// - anything else: "Hello from WASI 0.3!\n".
// It uses no wasi-libc function that calls WASI (stdio's formatting would pull in its
// file functions, hence `decimal`), so it is a component without the preview-1 adapter:
// WASI 0.3 alone.
// keep-guest: wasi-p3 http-service-p3
#include <stdlib.h>
#include <string.h>

#include "misbehave.h"
#include "http_service_p3.h"

typedef wasi_http_types_stream_u8_t stream_t;
typedef wasi_http_types_stream_u8_writer_t stream_writer_t;
typedef wasi_http_types_future_result_option_own_trailers_error_code_t trailers_t;
typedef wasi_http_types_future_result_option_own_trailers_error_code_writer_t trailers_writer_t;
typedef wasi_http_types_future_result_void_error_code_writer_t outcome_writer_t;

// Blocks until `waitable` (a stream or future end, or a subtask) has news; returns the
// event's code.
static uint32_t wait_for(uint32_t waitable) {
    http_service_p3_waitable_set_t set = http_service_p3_waitable_set_new();
    http_service_p3_waitable_join(waitable, set);
    http_service_p3_event_t event;
    http_service_p3_waitable_set_wait(set, &event);
    http_service_p3_waitable_join(waitable, 0);
    http_service_p3_waitable_set_drop(set);
    return event.code;
}

// The status of an operation on `end`, waited for if it blocked.
static uint32_t finish(uint32_t end, http_service_p3_waitable_status_t status) {
    return status == HTTP_SERVICE_P3_WAITABLE_STATUS_BLOCKED ? wait_for(end) : status;
}

// Writes all of `bytes` unless the reader goes away first; returns whether it took them.
static bool write_all(stream_writer_t out, const uint8_t *bytes, size_t len) {
    while (len > 0) {
        uint32_t status = finish(out, wasi_http_types_stream_u8_write(out, bytes, len));
        size_t written = HTTP_SERVICE_P3_WAITABLE_COUNT(status);
        bytes += written;
        len -= written;
        if (HTTP_SERVICE_P3_WAITABLE_STATE(status) != HTTP_SERVICE_P3_WAITABLE_COMPLETED)
            return len == 0;
    }
    return true;
}

static bool write_text(stream_writer_t out, const char *text) {
    return write_all(out, (const uint8_t *)text, strlen(text));
}

// Copies `in` to `out` until the writer of `in` is done; drops `in`.
static void copy_stream(stream_t in, stream_writer_t out) {
    static uint8_t buffer[65536];
    for (;;) {
        uint32_t status = finish(in, wasi_http_types_stream_u8_read(in, buffer, sizeof buffer));
        size_t read = HTTP_SERVICE_P3_WAITABLE_COUNT(status);
        if (read > 0 && !write_all(out, buffer, read)) break;
        if (HTTP_SERVICE_P3_WAITABLE_STATE(status) != HTTP_SERVICE_P3_WAITABLE_COMPLETED) break;
    }
    wasi_http_types_stream_u8_drop_readable(in);
}

// Starts completing a trailers future with `trailers` (or none); returns whether the
// write is still waiting for the reader.
static bool start_trailers(trailers_writer_t writer, wasi_http_types_own_trailers_t *trailers) {
    wasi_http_types_result_option_own_trailers_error_code_t value = {
        .is_err = false, .val = {.ok = {.is_some = trailers != NULL}}};
    if (trailers) value.val.ok.val = *trailers;
    return wasi_http_types_future_result_option_own_trailers_error_code_write(writer, &value) ==
           HTTP_SERVICE_P3_WAITABLE_STATUS_BLOCKED;
}

// Waits for a trailers write to end (if `pending`), and drops the future.
static void end_trailers(trailers_writer_t writer, bool pending) {
    if (pending) wait_for(writer);
    wasi_http_types_future_result_option_own_trailers_error_code_drop_writable(writer);
}

// Completes a trailers future with `trailers` (or none) and drops it.
static void send_trailers(trailers_writer_t writer, wasi_http_types_own_trailers_t *trailers) {
    end_trailers(writer, start_trailers(writer, trailers));
}

// Completes an outcome future with "ok" and drops it.
static void send_ok(outcome_writer_t writer) {
    wasi_http_types_result_void_error_code_t ok = {.is_err = false};
    finish(writer, wasi_http_types_future_result_void_error_code_write(writer, &ok));
    wasi_http_types_future_result_void_error_code_drop_writable(writer);
}

static void append_header(wasi_http_types_own_fields_t fields, const char *name,
                          const char *value) {
    wasi_http_types_field_name_t key = {.ptr = (uint8_t *)name, .len = strlen(name)};
    wasi_http_types_field_value_t text = {.ptr = (uint8_t *)value, .len = strlen(value)};
    wasi_http_types_header_error_t error;
    wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(fields), &key, &text,
                                         &error);
}

// Answers with `status`, `headers` and a body whose writer it returns, with the trailers
// given by `trailers` (a future this function creates when it is 0, whose writer goes to
// `*trailers_out`).
static stream_writer_t answer(unsigned status, wasi_http_types_own_fields_t headers,
                              trailers_t trailers, trailers_writer_t *trailers_out) {
    stream_writer_t out;
    stream_t body = wasi_http_types_stream_u8_new(&out);
    if (trailers == 0)
        trailers = wasi_http_types_future_result_option_own_trailers_error_code_new(trailers_out);
    wasi_http_types_tuple2_own_response_future_result_void_error_code_t response;
    wasi_http_types_static_response_new(headers, &body, trailers, &response);
    wasi_http_types_method_response_set_status_code(
        wasi_http_types_borrow_response(response.f0), (wasi_http_types_status_code_t)status);
    // How the host fared sending the body: not needed here.
    wasi_http_types_future_result_void_error_code_drop_readable(response.f1);
    exports_wasi_http_handler_result_own_response_error_code_t result = {
        .is_err = false, .val = {.ok = response.f0}};
    exports_wasi_http_handler_handle_return(result);
    return out;
}

// Answers with `status` and the body `text`, then no trailers.
static void answer_text(unsigned status, const char *text) {
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    append_header(headers, "content-type", "text/plain");
    trailers_writer_t trailers;
    stream_writer_t out = answer(status, headers, 0, &trailers);
    write_text(out, text);
    wasi_http_types_stream_u8_drop_writable(out);
    send_trailers(trailers, NULL);
}

// Echoes a request with a body: its body, its trailers, its `x-` headers.
static void echo(wasi_http_types_own_request_t request) {
    wasi_http_types_own_fields_t request_headers =
        wasi_http_types_method_request_get_headers(wasi_http_types_borrow_request(request));
    wasi_http_types_list_tuple2_field_name_field_value_t all;
    wasi_http_types_method_fields_copy_all(wasi_http_types_borrow_fields(request_headers), &all);
    wasi_http_types_fields_drop_own(request_headers);
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    append_header(headers, "content-type", "application/octet-stream");
    for (size_t i = 0; i < all.len; i++) {
        wasi_http_types_tuple2_field_name_field_value_t *field = &all.ptr[i];
        bool copied = (field->f0.len > 2 && memcmp(field->f0.ptr, "x-", 2) == 0) ||
                      (field->f0.len == 7 && memcmp(field->f0.ptr, "trailer", 7) == 0);
        if (copied) {
            wasi_http_types_header_error_t error;
            wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers),
                                                 &field->f0, &field->f1, &error);
        }
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&all);

    outcome_writer_t outcome;
    wasi_http_types_future_result_void_error_code_t outcome_reader =
        wasi_http_types_future_result_void_error_code_new(&outcome);
    wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t body;
    wasi_http_types_static_request_consume_body(request, outcome_reader, &body);
    stream_writer_t out = answer(200, headers, body.f1, NULL);
    copy_stream(body.f0, out);
    wasi_http_types_stream_u8_drop_writable(out);
    send_ok(outcome);
}

// Answers with a body, then the trailer `x-checksum: done`.
static void with_trailers(void) {
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    append_header(headers, "content-type", "text/plain");
    append_header(headers, "trailer", "x-checksum");
    trailers_writer_t trailers_writer;
    stream_writer_t out = answer(200, headers, 0, &trailers_writer);
    write_text(out, "the trailers follow\n");
    wasi_http_types_stream_u8_drop_writable(out);
    wasi_http_types_own_trailers_t trailers = wasi_http_types_constructor_fields();
    append_header(trailers, "x-checksum", "done");
    send_trailers(trailers_writer, &trailers);
}

// `prefix`, `number` in decimal and `suffix`, into `text` (32 bytes).
static const char *decimal(char *text, const char *prefix, unsigned number, const char *suffix) {
    char digits[12];
    size_t len = 0;
    do {
        digits[len++] = (char)('0' + number % 10);
        number /= 10;
    } while (number > 0);
    size_t at = strlen(prefix);
    memcpy(text, prefix, at);
    while (len > 0) text[at++] = digits[--len];
    strcpy(text + at, suffix);
    return text;
}

// What an outgoing request failed with: `denied` for HTTP-request-denied.
static const char *describe_error(char *text, wasi_http_types_error_code_t *error) {
    if (error->tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED) return "denied\n";
    return decimal(text, "error ", error->tag, "\n");
}

// GETs `url` (scheme://authority/path) with wasi:http/client and answers with
// `STATUS BODY` of its response, or what the request failed with.
static void fetch(const char *url) {
    const char *separator = strstr(url, "://");
    if (!separator) {
        answer_text(400, "not a URL\n");
        return;
    }
    const char *authority = separator + 3;
    const char *path = strchr(authority, '/');
    if (!path) path = authority + strlen(authority);

    trailers_writer_t no_trailers;
    trailers_t trailers =
        wasi_http_types_future_result_option_own_trailers_error_code_new(&no_trailers);
    wasi_http_types_tuple2_own_request_future_result_void_error_code_t outgoing;
    wasi_http_types_static_request_new(wasi_http_types_constructor_fields(), NULL, trailers,
                                       NULL, &outgoing);
    wasi_http_types_future_result_void_error_code_drop_readable(outgoing.f1);
    wasi_http_types_borrow_request_t borrowed = wasi_http_types_borrow_request(outgoing.f0);
    wasi_http_types_scheme_t scheme = {
        .tag = strncmp(url, "https", 5) == 0 ? WASI_HTTP_TYPES_SCHEME_HTTPS
                                              : WASI_HTTP_TYPES_SCHEME_HTTP};
    wasi_http_types_method_request_set_scheme(borrowed, &scheme);
    http_service_p3_string_t authority_text = {.ptr = (uint8_t *)authority,
                                               .len = (size_t)(path - authority)};
    wasi_http_types_method_request_set_authority(borrowed, &authority_text);
    http_service_p3_string_t path_text = {.ptr = (uint8_t *)(*path ? path : "/"),
                                          .len = *path ? strlen(path) : 1};
    wasi_http_types_method_request_set_path_with_query(borrowed, &path_text);
    // The host reads the trailers while it sends the request, so they cannot be waited
    // for before.
    bool trailers_pending = start_trailers(no_trailers, NULL);

    wasi_http_client_result_own_response_error_code_t result;
    http_service_p3_subtask_status_t status = wasi_http_client_send(outgoing.f0, &result);
    if (HTTP_SERVICE_P3_SUBTASK_STATE(status) != HTTP_SERVICE_P3_SUBTASK_RETURNED) {
        http_service_p3_subtask_t subtask = HTTP_SERVICE_P3_SUBTASK_HANDLE(status);
        while (wait_for(subtask) != HTTP_SERVICE_P3_SUBTASK_RETURNED) {
        }
        http_service_p3_subtask_drop(subtask);
    }
    end_trailers(no_trailers, trailers_pending);
    if (result.is_err) {
        char text[32];
        const char *description = describe_error(text, &result.val.err);
        wasi_http_types_error_code_free(&result.val.err);
        answer_text(200, description);
        return;
    }
    wasi_http_types_own_response_t response = result.val.ok;
    char text[32];
    decimal(text, "",
            wasi_http_types_method_response_get_status_code(
                wasi_http_types_borrow_response(response)),
            " ");
    outcome_writer_t outcome;
    wasi_http_types_future_result_void_error_code_t outcome_reader =
        wasi_http_types_future_result_void_error_code_new(&outcome);
    wasi_http_types_tuple2_stream_u8_future_result_option_own_trailers_error_code_t body;
    wasi_http_types_static_response_consume_body(response, outcome_reader, &body);
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    append_header(headers, "content-type", "text/plain");
    trailers_writer_t answer_trailers;
    stream_writer_t out = answer(200, headers, 0, &answer_trailers);
    write_text(out, text);
    copy_stream(body.f0, out);
    wasi_http_types_stream_u8_drop_writable(out);
    wasi_http_types_future_result_option_own_trailers_error_code_drop_readable(body.f1);
    send_ok(outcome);
    send_trailers(answer_trailers, NULL);
}

// Requests this instance has answered.
static unsigned answered;

http_service_p3_callback_code_t exports_wasi_http_handler_handle(
    exports_wasi_http_handler_own_request_t request) {
    answered++;
    wasi_http_types_borrow_request_t borrowed = wasi_http_types_borrow_request(request);
    wasi_http_types_method_t method;
    wasi_http_types_method_request_get_method(borrowed, &method);
    bool has_body = method.tag == WASI_HTTP_TYPES_METHOD_POST ||
                    method.tag == WASI_HTTP_TYPES_METHOD_PUT;
    wasi_http_types_method_free(&method);
    http_service_p3_string_t given;
    char *path = wasi_http_types_method_request_get_path_with_query(borrowed, &given)
                     ? strndup((const char *)given.ptr, given.len)
                     : strdup("");
    if (path == NULL) abort();

    if (has_body) {
        echo(request);
        free(path);
        return HTTP_SERVICE_P3_CALLBACK_CODE_EXIT;
    }
    wasi_http_types_request_drop_own(request);
    if (strcmp(path, "/trap") == 0) __builtin_trap();
    if (strcmp(path, "/bomb") == 0) bomb();
    if (strncmp(path, "/status/", 8) == 0) {
        char text[32];
        unsigned status = (unsigned)strtoul(path + 8, NULL, 10);
        answer_text(status, decimal(text, "status ", status, "\n"));
    } else if (strcmp(path, "/count") == 0) {
        char text[32];
        answer_text(200, decimal(text, "", answered, "\n"));
    } else if (strcmp(path, "/trailers") == 0) {
        with_trailers();
    } else if (strncmp(path, "/fetch?", 7) == 0) {
        fetch(path + 7);
    } else if (strcmp(path, "/spin") == 0) {
        wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
        trailers_writer_t trailers;
        answer(200, headers, 0, &trailers);
        spin();
    } else {
        answer_text(200, "Hello from WASI 0.3!\n");
    }
    free(path);
    return HTTP_SERVICE_P3_CALLBACK_CODE_EXIT;
}

// Never called: the export does all its waiting itself, in `waitable-set.wait`.
http_service_p3_callback_code_t exports_wasi_http_handler_handle_callback(
    http_service_p3_event_t *event) {
    (void)event;
    abort();
}
