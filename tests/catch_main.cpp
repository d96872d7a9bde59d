// Catch2's main(), compiled once for the whole suite (tests/*_test.cpp hold the test cases).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
