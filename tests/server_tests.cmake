# Integration tests against the real gradserve-server binary.
add_library(gradserve_test_server_process STATIC server_process.cc)
target_include_directories(gradserve_test_server_process PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(gradserve_test_server_process PUBLIC absl::statusor absl::strings Threads::Threads)
target_compile_definitions(gradserve_test_server_process
  PRIVATE GRADSERVE_SERVER_BINARY="$<TARGET_FILE:gradserve-server>")

add_library(gradserve_test_certificates STATIC test_certificates.cc)
target_include_directories(gradserve_test_certificates PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(gradserve_test_certificates PUBLIC absl::strings)

# Client stubs the tests need beyond gradserve's own: health and reflection.
set(test_gen ${CMAKE_CURRENT_BINARY_DIR}/gen)
set(test_proto_srcs
  ${test_gen}/grpc/health/v1/health.grpc.pb.cc
  ${test_gen}/grpc/reflection/v1alpha/reflection.pb.cc
  ${test_gen}/grpc/reflection/v1alpha/reflection.grpc.pb.cc)
add_custom_command(
  OUTPUT ${test_proto_srcs}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${test_gen}
  COMMAND protobuf::protoc --proto_path=${GRADSERVE_HEALTH_PROTO_DIR}
    --cpp_out=${test_gen} --grpc_out=${test_gen}
    --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>
    grpc/reflection/v1alpha/reflection.proto
  COMMAND protobuf::protoc --proto_path=${GRADSERVE_HEALTH_PROTO_DIR} --grpc_out=${test_gen}
    --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>
    grpc/health/v1/health.proto
  COMMENT "protoc health and reflection client stubs for tests")
add_library(gradserve_test_protos STATIC ${test_proto_srcs})
target_include_directories(gradserve_test_protos PUBLIC ${test_gen})
target_link_libraries(gradserve_test_protos PUBLIC gradserve::proto)

gradserve_test(tensor_codec_test gradserve::server)
gradserve_test(server_test gradserve::proto gradserve_test_protos gradserve_test_server_process)
gradserve_test(server_security_test gradserve::proto gradserve_test_server_process gradserve_test_certificates)
