/*
 * The CSGI 1.2 ABI (ABI version 1) as pinned numbers, for x86_64 LP64 (System V psABI).
 *
 * Shared by test_abi.c (C11), build_c99.c (C99, pedantic) and build_cxx.cc
 * (C++11, pedantic), so that all three compilers are held to the same
 * layout. A change here is an ABI change: it needs a new CSGI_ABI_VERSION,
 * or, for an appended field or constant, a new struct version and a review.
 *
 * ABI_STRUCT_SIZES(X):   X(struct tag, sizeof)
 * ABI_FIELD_OFFSETS(X):  X(struct tag, field, offsetof)
 * ABI_ERROR_CODES(X):    X(CSGI_ERRNO_MAP name, value), in map order
 * ABI_CONSTANTS(X):      X(enum constant or macro, value)
 */
#ifndef CSGI_TEST_ABI_PINS_H
#define CSGI_TEST_ABI_PINS_H

#if defined(__x86_64__) && defined(__LP64__)
#define ABI_PINS_APPLY 1
#else
#define ABI_PINS_APPLY 0
#endif

#define ABI_STRUCT_SIZES(X)                                                                        \
    X(csgi_str, 16)                                                                                \
    X(csgi_header, 32)                                                                             \
    X(csgi_kv, 16)                                                                                 \
    X(csgi_chunk, 16)                                                                              \
    X(csgi_input, 40)                                                                              \
    X(csgi_errors, 40)                                                                             \
    X(csgi_environ, 296)                                                                           \
    X(csgi_tls, 104)                                                                               \
    X(csgi_exc_info, 24)                                                                           \
    X(csgi_responder, 32)                                                                          \
    X(csgi_body, 40)                                                                               \
    X(csgi_host_api, 160)                                                                          \
    X(csgi_plugin, 96)                                                                             \
    X(csgi_upgrade_handler, 40)

#define ABI_FIELD_OFFSETS(X)                                                                       \
    X(csgi_str, ptr, 0)                                                                            \
    X(csgi_str, len, 8)                                                                            \
    X(csgi_header, name, 0)                                                                        \
    X(csgi_header, value, 16)                                                                      \
    X(csgi_kv, key, 0)                                                                             \
    X(csgi_kv, value, 8)                                                                           \
    X(csgi_chunk, ptr, 0)                                                                          \
    X(csgi_chunk, len, 8)                                                                          \
    X(csgi_input, version, 0)                                                                      \
    X(csgi_input, reserved, 4)                                                                     \
    X(csgi_input, ctx, 8)                                                                          \
    X(csgi_input, read, 16)                                                                        \
    X(csgi_input, readline, 24)                                                                    \
    X(csgi_input, rewind, 32)                                                                      \
    X(csgi_errors, version, 0)                                                                     \
    X(csgi_errors, reserved, 4)                                                                    \
    X(csgi_errors, ctx, 8)                                                                         \
    X(csgi_errors, log, 16)                                                                        \
    X(csgi_errors, write, 24)                                                                      \
    X(csgi_errors, flush, 32)                                                                      \
    X(csgi_environ, version, 0)                                                                    \
    X(csgi_environ, flags, 4)                                                                      \
    X(csgi_environ, request, 8)                                                                    \
    X(csgi_environ, request_method, 16)                                                            \
    X(csgi_environ, script_name, 32)                                                               \
    X(csgi_environ, path_info, 48)                                                                 \
    X(csgi_environ, query_string, 64)                                                              \
    X(csgi_environ, raw_target, 80)                                                                \
    X(csgi_environ, content_type, 96)                                                              \
    X(csgi_environ, content_length, 112)                                                           \
    X(csgi_environ, server_name, 120)                                                              \
    X(csgi_environ, server_port, 136)                                                              \
    X(csgi_environ, server_protocol, 152)                                                          \
    X(csgi_environ, url_scheme, 168)                                                               \
    X(csgi_environ, remote_addr, 184)                                                              \
    X(csgi_environ, remote_port, 200)                                                              \
    X(csgi_environ, reserved, 204)                                                                 \
    X(csgi_environ, headers, 208)                                                                  \
    X(csgi_environ, n_headers, 216)                                                                \
    X(csgi_environ, input, 224)                                                                    \
    X(csgi_environ, errors, 232)                                                                   \
    X(csgi_environ, config, 240)                                                                   \
    X(csgi_environ, n_config, 248)                                                                 \
    X(csgi_environ, host, 256)                                                                     \
    X(csgi_environ, request_id, 264)                                                               \
    X(csgi_environ, input_length, 280)                                                             \
    X(csgi_environ, tls, 288)                                                                      \
    X(csgi_tls, version, 0)                                                                        \
    X(csgi_tls, reserved, 4)                                                                       \
    X(csgi_tls, protocol, 8)                                                                       \
    X(csgi_tls, cipher, 24)                                                                        \
    X(csgi_tls, sni, 40)                                                                           \
    X(csgi_tls, client_verify, 56)                                                                 \
    X(csgi_tls, client_s_dn, 72)                                                                   \
    X(csgi_tls, client_i_dn, 88)                                                                   \
    X(csgi_exc_info, version, 0)                                                                   \
    X(csgi_exc_info, code, 4)                                                                      \
    X(csgi_exc_info, message, 8)                                                                   \
    X(csgi_responder, version, 0)                                                                  \
    X(csgi_responder, reserved, 4)                                                                 \
    X(csgi_responder, ctx, 8)                                                                      \
    X(csgi_responder, start_response, 16)                                                          \
    X(csgi_responder, write, 24)                                                                   \
    X(csgi_body, version, 0)                                                                       \
    X(csgi_body, flags, 4)                                                                         \
    X(csgi_body, total_length, 8)                                                                  \
    X(csgi_body, ctx, 16)                                                                          \
    X(csgi_body, next, 24)                                                                         \
    X(csgi_body, close, 32)                                                                        \
    X(csgi_host_api, version, 0)                                                                   \
    X(csgi_host_api, size, 4)                                                                      \
    X(csgi_host_api, abi_version, 8)                                                               \
    X(csgi_host_api, spec_version, 12)                                                             \
    X(csgi_host_api, server_software, 16)                                                          \
    X(csgi_host_api, ctx, 24)                                                                      \
    X(csgi_host_api, log, 32)                                                                      \
    X(csgi_host_api, vlog, 40)                                                                     \
    X(csgi_host_api, alloc, 48)                                                                    \
    X(csgi_host_api, header_get, 56)                                                               \
    X(csgi_host_api, body_from_fd, 64)                                                             \
    X(csgi_host_api, on_finished, 72)                                                              \
    X(csgi_host_api, request_url, 80)                                                              \
    X(csgi_host_api, get_extension, 88)                                                            \
    X(csgi_host_api, body_from_buffer, 96)                                                         \
    X(csgi_host_api, resume, 104)                                                                  \
    X(csgi_host_api, timer, 112)                                                                   \
    X(csgi_host_api, watch_fd, 120)                                                                \
    X(csgi_host_api, stopping, 128)                                                                \
    X(csgi_host_api, upgrade, 136)                                                                 \
    X(csgi_host_api, upgrade_write, 144)                                                           \
    X(csgi_host_api, upgrade_close, 152)                                                           \
    X(csgi_upgrade_handler, version, 0)                                                            \
    X(csgi_upgrade_handler, reserved, 4)                                                           \
    X(csgi_upgrade_handler, on_data, 8)                                                            \
    X(csgi_upgrade_handler, on_writable, 16)                                                       \
    X(csgi_upgrade_handler, on_stop, 24)                                                           \
    X(csgi_upgrade_handler, on_close, 32)                                                          \
    X(csgi_plugin, magic, 0)                                                                       \
    X(csgi_plugin, abi_version, 4)                                                                 \
    X(csgi_plugin, version, 8)                                                                     \
    X(csgi_plugin, size, 12)                                                                       \
    X(csgi_plugin, name, 16)                                                                       \
    X(csgi_plugin, plugin_version, 24)                                                             \
    X(csgi_plugin, description, 32)                                                                \
    X(csgi_plugin, mount, 40)                                                                      \
    X(csgi_plugin, flags, 48)                                                                      \
    X(csgi_plugin, reserved, 52)                                                                   \
    X(csgi_plugin, init_worker, 56)                                                                \
    X(csgi_plugin, call, 64)                                                                       \
    X(csgi_plugin, exit_worker, 72)                                                                \
    X(csgi_plugin, wrap, 80)                                                                       \
    X(csgi_plugin, unwrap, 88)

/* Every entry of CSGI_ERRNO_MAP, in order. Append-only: never renumber. */
#define ABI_ERROR_CODES(X)                                                                         \
    X(EPERM, -1)                                                                                   \
    X(ENOENT, -2)                                                                                  \
    X(EIO, -5)                                                                                     \
    X(EBADF, -9)                                                                                   \
    X(ENOMEM, -12)                                                                                 \
    X(EINVAL, -22)                                                                                 \
    X(ENOSYS, -38)                                                                                 \
    X(ENOTSUP, -95)                                                                                \
    X(ECONNRESET, -104)                                                                            \
    X(ETIMEDOUT, -110)                                                                             \
    X(EDECLINED, -1000)                                                                            \
    X(ESTATE, -1001)                                                                               \
    X(EHEADERS_SENT, -1002)                                                                        \
    X(EABI, -1003)                                                                                 \
    X(EHEADER, -1004)                                                                              \
    X(ESTATUS, -1005)                                                                              \
    X(ELENGTH, -1006)                                                                              \
    X(ETOOBIG, -1007)                                                                              \
    X(EAPP, -1008)

#define ABI_CONSTANTS(X)                                                                           \
    X(CSGI_OK, 0)                                                                                  \
    X(CSGI_DONE, 1)                                                                                \
    X(CSGI_PENDING, 2)                                                                             \
    X(CSGI_EPERM, -1)                                                                              \
    X(CSGI_ENOENT, -2)                                                                             \
    X(CSGI_EIO, -5)                                                                                \
    X(CSGI_EBADF, -9)                                                                              \
    X(CSGI_ENOMEM, -12)                                                                            \
    X(CSGI_EINVAL, -22)                                                                            \
    X(CSGI_ENOSYS, -38)                                                                            \
    X(CSGI_ENOTSUP, -95)                                                                           \
    X(CSGI_ECONNRESET, -104)                                                                       \
    X(CSGI_ETIMEDOUT, -110)                                                                        \
    X(CSGI_EDECLINED, -1000)                                                                       \
    X(CSGI_ESTATE, -1001)                                                                          \
    X(CSGI_EHEADERS_SENT, -1002)                                                                   \
    X(CSGI_EABI, -1003)                                                                            \
    X(CSGI_EHEADER, -1004)                                                                         \
    X(CSGI_ESTATUS, -1005)                                                                         \
    X(CSGI_ELENGTH, -1006)                                                                         \
    X(CSGI_ETOOBIG, -1007)                                                                         \
    X(CSGI_EAPP, -1008)                                                                            \
    X(CSGI_LOG_ERROR, 1)                                                                           \
    X(CSGI_LOG_WARN, 2)                                                                            \
    X(CSGI_LOG_INFO, 3)                                                                            \
    X(CSGI_LOG_DEBUG, 4)                                                                           \
    X(CSGI_LOG_TRACE, 5)                                                                           \
    X(CSGI_ENV_MULTITHREAD, 0x01)                                                                  \
    X(CSGI_ENV_MULTIPROCESS, 0x02)                                                                 \
    X(CSGI_ENV_RUN_ONCE, 0x04)                                                                     \
    X(CSGI_ENV_INPUT_TERMINATED, 0x08)                                                             \
    X(CSGI_ENV_INPUT_BUFFERED, 0x10)                                                               \
    X(CSGI_ENV_TLS, 0x20)                                                                          \
    X(CSGI_PLUGIN_THREADSAFE, 0x01)                                                                \
    X(CSGI_PLUGIN_WAITS, 0x02)                                                                     \
    X(CSGI_BODY_FILE, 0x01)                                                                        \
    X(CSGI_FD_CLOSE, 0x01)                                                                         \
    X(CSGI_WATCH_READ, 0x01)                                                                       \
    X(CSGI_WATCH_WRITE, 0x02)                                                                      \
    X(CSGI_BUF_BORROW, 0x01)                                                                       \
    X(CSGI_FINISH_OK, 0)                                                                           \
    X(CSGI_FINISH_ERROR, 1)                                                                        \
    X(CSGI_FINISH_CLIENT_ABORT, 2)                                                                 \
    X(CSGI_FINISH_TIMEOUT, 3)                                                                      \
    X(CSGI_FINISH_SHUTDOWN, 4)                                                                     \
    X(CSGI_PLUGIN_MAGIC, 0x43534749)                                                               \
    X(CSGI_ABI_VERSION, 1)                                                                         \
    X(CSGI_VERSION_MAJOR, 1)                                                                       \
    X(CSGI_VERSION_MINOR, 2)                                                                       \
    X(CSGI_VERSION_PATCH, 0)                                                                       \
    X(CSGI_VERSION_HEX, 0x010200)                                                                  \
    X(CSGI_PLUGIN_VERSION, 2)                                                                      \
    X(CSGI_HOST_API_VERSION, 4)                                                                    \
    X(CSGI_UPGRADE_HANDLER_VERSION, 1)                                                             \
    X(CSGI_PLUGIN_UPGRADES, 0x04)                                                                  \
    X(CSGI_ENVIRON_VERSION, 3)                                                                     \
    X(CSGI_INPUT_VERSION, 1)                                                                       \
    X(CSGI_ERRORS_VERSION, 1)                                                                      \
    X(CSGI_RESPONDER_VERSION, 1)                                                                   \
    X(CSGI_BODY_VERSION, 1)                                                                        \
    X(CSGI_TLS_VERSION, 1)                                                                         \
    X(CSGI_EXC_INFO_VERSION, 1)

#endif /* CSGI_TEST_ABI_PINS_H */
