#pragma once
// ASSERT_RPC_OK(call): a gRPC call of a VM guest test must succeed; on failure the
// message names the call, its status code and message. Kept apart from guest_util.h,
// which has no gtest (the benchmark uses it).

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#define ASSERT_RPC_OK(expr)                                                                   \
  do {                                                                                        \
    grpc::Status st_ = (expr);                                                                \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.error_code() << " " << st_.error_message(); \
  } while (0)
