// A wasi:http service (world http-service in wit/world.wit): answers every request with
// `content-type: text/plain`, and status 200 unless GET /status/NNN asks for NNN (the body
// is then `status NNN`). The body is that of a request with a body (POST, PUT) streamed
// back unchanged, with its trailers after it and its `x-` and `trailer` headers copied
// into the response (HTTP/1.1 sends only the trailers a response declares); for GET
// /trailers, a line and then the trailer `x-checksum: done`; for GET /count, the number of requests this instance
// has answered (a server with a fresh instance per request always says 1); for GET
// /env/NAME, the value of the environment variable NAME; for GET /config/KEY, the value of
// KEY in wasi:config/store (or `unset`); for GET /file/PATH, the content of the file /PATH; for GET /fetch?URL, `STATUS BODY`
// of a GET of URL with wasi:http/outgoing-handler (or `denied`, or `error CODE`);
// otherwise "Hello from a Keep!\n".
// Misbehaviour on demand: GET /trap traps and GET /bomb allocates (and touches) memory
// until none is left, then aborts, both before any answer; GET /spin answers 200, then
// computes forever without calling the host instead of writing the body.
// It is a command too (`keep run`, `wasmtime run`): `run` GETs the URL its first argument
// names and prints `STATUS BODY` (or `denied`, or `error CODE`) on stdout.
// keep-guest: wasi-http
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "misbehave.h"
#include "http_service.h"

static void append_header(wasi_http_types_borrow_fields_t fields, const char *name,
                          const char *value) {
    wasi_http_types_field_name_t key = {.ptr = (uint8_t *)name, .len = strlen(name)};
    wasi_http_types_field_value_t text = {.ptr = (uint8_t *)value, .len = strlen(value)};
    wasi_http_types_header_error_t error;
    wasi_http_types_method_fields_append(fields, &key, &text, &error);
}

// blocking-write-and-flush takes at most 4096 bytes a call.
static void write_all(wasi_http_types_own_output_stream_t out, uint8_t *bytes, size_t len) {
    for (size_t done = 0; done < len;) {
        size_t n = len - done < 4096 ? len - done : 4096;
        http_service_list_u8_t contents = {.ptr = bytes + done, .len = n};
        wasi_io_streams_stream_error_t error;
        if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(
                wasi_io_streams_borrow_output_stream(out), &contents, &error))
            return;
        done += n;
    }
}

// Copies `body` (an incoming request's or response's) to `out`, and finishes it; its
// trailers go to `trailers` unless that is NULL.
static void copy_body(wasi_http_types_own_incoming_body_t body,
                      wasi_http_types_own_output_stream_t out,
                      wasi_http_types_option_own_trailers_t *trailers) {
    wasi_http_types_own_input_stream_t in;
    if (wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                    &in)) {
        for (;;) {
            http_service_list_u8_t chunk;
            wasi_io_streams_stream_error_t error;
            if (!wasi_io_streams_method_input_stream_blocking_read(
                    wasi_io_streams_borrow_input_stream(in), 65536, &chunk, &error))
                break;
            write_all(out, chunk.ptr, chunk.len);
            http_service_list_u8_free(&chunk);
        }
        wasi_io_streams_input_stream_drop_own(in);
    }
    wasi_http_types_own_future_trailers_t future = wasi_http_types_static_incoming_body_finish(body);
    wasi_http_types_borrow_future_trailers_t borrowed = wasi_http_types_borrow_future_trailers(future);
    if (trailers) {
        wasi_io_poll_own_pollable_t ready = wasi_http_types_method_future_trailers_subscribe(borrowed);
        wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
        wasi_io_poll_pollable_drop_own(ready);
        wasi_http_types_result_result_option_own_trailers_error_code_void_t result;
        if (wasi_http_types_method_future_trailers_get(borrowed, &result) && !result.is_err &&
            !result.val.ok.is_err)
            *trailers = result.val.ok.val.ok;
    }
    wasi_http_types_future_trailers_drop_own(future);
}

// Whether the request has a body to echo (POST, PUT).
static bool has_body(wasi_http_types_own_incoming_request_t request) {
    wasi_http_types_method_t method;
    wasi_http_types_method_incoming_request_method(
        wasi_http_types_borrow_incoming_request(request), &method);
    bool with_body = method.tag == WASI_HTTP_TYPES_METHOD_POST ||
                     method.tag == WASI_HTTP_TYPES_METHOD_PUT;
    wasi_http_types_method_free(&method);
    return with_body;
}

// Copies the request's `x-` and `trailer` headers to `headers`.
static void copy_headers(wasi_http_types_own_incoming_request_t request,
                         wasi_http_types_borrow_fields_t headers) {
    wasi_http_types_own_headers_t given = wasi_http_types_method_incoming_request_headers(
        wasi_http_types_borrow_incoming_request(request));
    wasi_http_types_list_tuple2_field_name_field_value_t all;
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(given), &all);
    for (size_t i = 0; i < all.len; i++) {
        wasi_http_types_tuple2_field_name_field_value_t *field = &all.ptr[i];
        bool copied = (field->f0.len > 2 && memcmp(field->f0.ptr, "x-", 2) == 0) ||
                      (field->f0.len == 7 && memcmp(field->f0.ptr, "trailer", 7) == 0);
        wasi_http_types_header_error_t error;
        if (copied) wasi_http_types_method_fields_append(headers, &field->f0, &field->f1, &error);
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&all);
    wasi_http_types_fields_drop_own(given);
}

// Copies the request's body to `out`, its trailers to `trailers`.
static void echo_body(wasi_http_types_own_incoming_request_t request,
                      wasi_http_types_own_output_stream_t out,
                      wasi_http_types_option_own_trailers_t *trailers) {
    wasi_http_types_own_incoming_body_t body;
    if (wasi_http_types_method_incoming_request_consume(
            wasi_http_types_borrow_incoming_request(request), &body))
        copy_body(body, out, trailers);
}

static void write_text(wasi_http_types_own_output_stream_t out, const char *text) {
    write_all(out, (uint8_t *)text, strlen(text));
}

// Writes what an outgoing request failed with: `denied` for HTTP-request-denied.
static void write_error(wasi_http_types_own_output_stream_t out,
                        wasi_http_types_error_code_t *error) {
    char text[64];
    if (error->tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED)
        snprintf(text, sizeof text, "denied\n");
    else
        snprintf(text, sizeof text, "error %u\n", (unsigned)error->tag);
    write_text(out, text);
}

// GETs `url` (scheme://authority/path) with wasi:http/outgoing-handler and writes
// `STATUS BODY` of the response, or what the request failed with.
static void fetch(const char *url, wasi_http_types_own_output_stream_t out) {
    const char *separator = strstr(url, "://");
    if (!separator) {
        write_text(out, "not a URL\n");
        return;
    }
    const char *authority = separator + 3;
    const char *path = strchr(authority, '/');
    if (!path) path = authority + strlen(authority);
    wasi_http_types_own_outgoing_request_t request =
        wasi_http_types_constructor_outgoing_request(wasi_http_types_constructor_fields());
    wasi_http_types_borrow_outgoing_request_t borrowed =
        wasi_http_types_borrow_outgoing_request(request);
    wasi_http_types_scheme_t scheme = {
        .tag = strncmp(url, "https", 5) == 0 ? WASI_HTTP_TYPES_SCHEME_HTTPS
                                              : WASI_HTTP_TYPES_SCHEME_HTTP};
    wasi_http_types_method_outgoing_request_set_scheme(borrowed, &scheme);
    http_service_string_t authority_text = {.ptr = (uint8_t *)authority,
                                            .len = (size_t)(path - authority)};
    wasi_http_types_method_outgoing_request_set_authority(borrowed, &authority_text);
    http_service_string_t path_text = {.ptr = (uint8_t *)(*path ? path : "/"),
                                       .len = *path ? strlen(path) : 1};
    wasi_http_types_method_outgoing_request_set_path_with_query(borrowed, &path_text);

    wasi_http_outgoing_handler_own_future_incoming_response_t pending;
    wasi_http_outgoing_handler_error_code_t error;
    if (!wasi_http_outgoing_handler_handle(request, NULL, &pending, &error)) {
        write_error(out, &error);
        wasi_http_types_error_code_free(&error);
        return;
    }
    wasi_http_types_borrow_future_incoming_response_t future =
        wasi_http_types_borrow_future_incoming_response(pending);
    wasi_io_poll_own_pollable_t ready =
        wasi_http_types_method_future_incoming_response_subscribe(future);
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);
    wasi_http_types_result_result_own_incoming_response_error_code_void_t result;
    if (!wasi_http_types_method_future_incoming_response_get(future, &result) || result.is_err) {
        write_text(out, "no response\n");
    } else if (result.val.ok.is_err) {
        write_error(out, &result.val.ok.val.err);
        wasi_http_types_error_code_free(&result.val.ok.val.err);
    } else {
        wasi_http_types_own_incoming_response_t response = result.val.ok.val.ok;
        char status[16];
        snprintf(status, sizeof status, "%u ",
                 (unsigned)wasi_http_types_method_incoming_response_status(
                     wasi_http_types_borrow_incoming_response(response)));
        write_text(out, status);
        wasi_http_types_own_incoming_body_t body;
        if (wasi_http_types_method_incoming_response_consume(
                wasi_http_types_borrow_incoming_response(response), &body))
            copy_body(body, out, NULL);
        wasi_http_types_incoming_response_drop_own(response);
    }
    wasi_http_types_future_incoming_response_drop_own(pending);
}

// Requests this instance has answered.
static unsigned answered;

// The request's path and query, NUL-terminated (empty when absent); the caller frees it.
static char *path_of(wasi_http_types_own_incoming_request_t request) {
    http_service_string_t actual;
    if (!wasi_http_types_method_incoming_request_path_with_query(
            wasi_http_types_borrow_incoming_request(request), &actual))
        return strdup("");
    char *path = strndup((const char *)actual.ptr, actual.len);
    http_service_string_free(&actual);
    return path;
}

void exports_wasi_http_incoming_handler_handle(
    exports_wasi_http_incoming_handler_own_incoming_request_t request,
    exports_wasi_http_incoming_handler_own_response_outparam_t response_out) {
    char *path = path_of(request);
    if (strcmp(path, "/trap") == 0) __builtin_trap();
    if (strcmp(path, "/bomb") == 0) bomb();
    bool echo = has_body(request);
    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    append_header(wasi_http_types_borrow_fields(headers), "content-type", "text/plain");
    if (echo) copy_headers(request, wasi_http_types_borrow_fields(headers));
    if (strcmp(path, "/trailers") == 0)
        append_header(wasi_http_types_borrow_fields(headers), "trailer", "x-checksum");
    wasi_http_types_own_outgoing_response_t response =
        wasi_http_types_constructor_outgoing_response(headers);
    unsigned status = strncmp(path, "/status/", 8) == 0 ? (unsigned)atoi(path + 8) : 200;
    wasi_http_types_method_outgoing_response_set_status_code(
        wasi_http_types_borrow_outgoing_response(response), (uint16_t)status);
    wasi_http_types_own_outgoing_body_t body;
    wasi_http_types_method_outgoing_response_body(
        wasi_http_types_borrow_outgoing_response(response), &body);
    wasi_http_types_result_own_outgoing_response_error_code_t result = {
        .is_err = false, .val = {.ok = response}};
    wasi_http_types_static_response_outparam_set(response_out, &result);

    wasi_http_types_own_output_stream_t out;
    wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body), &out);
    answered++;
    wasi_http_types_option_own_trailers_t trailers = {.is_some = false};
    if (echo) {
        echo_body(request, out, &trailers);
    } else if (status != 200) {
        char text[32];
        int len = snprintf(text, sizeof text, "status %u\n", status);
        write_all(out, (uint8_t *)text, (size_t)len);
    } else if (strcmp(path, "/trailers") == 0) {
        write_text(out, "the trailers follow\n");
        trailers.is_some = true;
        trailers.val = wasi_http_types_constructor_fields();
        append_header(wasi_http_types_borrow_fields(trailers.val), "x-checksum", "done");
    } else if (strcmp(path, "/spin") == 0) {
        spin();
    } else if (strcmp(path, "/count") == 0) {
        char text[32];
        int len = snprintf(text, sizeof text, "%u\n", answered);
        write_all(out, (uint8_t *)text, (size_t)len);
    } else if (strncmp(path, "/fetch?", 7) == 0) {
        fetch(path + 7, out);
    } else if (strncmp(path, "/file/", 6) == 0) {
        FILE *file = fopen(path + 5, "rb");
        if (file) {
            uint8_t buffer[4096];
            size_t n;
            while ((n = fread(buffer, 1, sizeof buffer, file)) > 0) write_all(out, buffer, n);
            fclose(file);
        } else {
            write_text(out, "cannot open\n");
        }
    } else if (strncmp(path, "/config/", 8) == 0) {
        http_service_string_t key = {.ptr = (uint8_t *)path + 8, .len = strlen(path + 8)};
        http_service_option_string_t value;
        wasi_config_store_error_t error;
        if (wasi_config_store_get(&key, &value, &error) && value.is_some) {
            write_all(out, value.val.ptr, value.val.len);
            http_service_option_string_free(&value);
        } else {
            write_text(out, "unset");
        }
    } else if (strncmp(path, "/env/", 5) == 0) {
        const char *value = getenv(path + 5);
        if (value) write_all(out, (uint8_t *)value, strlen(value));
    } else {
        const char *hello = "Hello from a Keep!\n";
        write_all(out, (uint8_t *)hello, strlen(hello));
    }
    free(path);
    wasi_io_streams_output_stream_drop_own(out);
    wasi_http_types_incoming_request_drop_own(request);
    wasi_http_types_error_code_t error;
    wasi_http_types_static_outgoing_body_finish(body, trailers.is_some ? &trailers.val : NULL,
                                                &error);
}

bool exports_wasi_cli_run_run(void) {
    wasi_http_types_own_output_stream_t out = wasi_cli_stdout_get_stdout();
    http_service_list_string_t arguments;
    wasi_cli_environment_get_arguments(&arguments);
    if (arguments.len > 1) {
        char *url = strndup((const char *)arguments.ptr[1].ptr, arguments.ptr[1].len);
        if (url) fetch(url, out);
        free(url);
    }
    http_service_list_string_free(&arguments);
    wasi_io_streams_output_stream_drop_own(out);
    return true;
}
