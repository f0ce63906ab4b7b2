/*
 * A WAGI function in C: a WASI 0.1 command built with clang and wasi-libc,
 *
 *     clang --target=wasm32-wasi -O2 -Wl,--strip-all -o hello.wasm hello.c
 *
 * Flint runs it once per request as a CGI script. It greets `?name=`,
 * tells how many body bytes it read from stdin and echoes them, and
 * answers `/teapot` with a status of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of `key` in the query string, copied into `out`. */
static void param(const char *query, const char *key, char *out, size_t size) {
    size_t key_len = strlen(key);
    out[0] = '\0';
    while (query && *query) {
        const char *end = strchr(query, '&');
        size_t len = end ? (size_t)(end - query) : strlen(query);
        if (len > key_len && strncmp(query, key, key_len) == 0 && query[key_len] == '=') {
            size_t n = len - key_len - 1;
            if (n >= size) {
                n = size - 1;
            }
            memcpy(out, query + key_len + 1, n);
            out[n] = '\0';
            return;
        }
        query = end ? end + 1 : NULL;
    }
}

int main(void) {
    const char *path = getenv("PATH_INFO");
    const char *method = getenv("REQUEST_METHOD");
    char name[128];
    param(getenv("QUERY_STRING"), "name", name, sizeof name);
    if (name[0] == '\0') {
        strcpy(name, "world");
    }

    if (path && strcmp(path, "/teapot") == 0) {
        printf("Status: 418 I'm a teapot\nContent-Type: text/plain\n\nshort and stout\n");
        return 0;
    }

    char body[4096];
    size_t n = fread(body, 1, sizeof body, stdin);
    printf("Content-Type: text/plain\n");
    printf("X-Language: C\n");
    printf("X-Method: %s\n\n", method ? method : "");
    printf("Hello from C, %s! You sent %zu bytes", name, n);
    if (n > 0) {
        printf(": ");
        fwrite(body, 1, n, stdout);
    }
    printf("\n");
    return 0;
}
