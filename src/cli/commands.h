// Subcommands of the rackserve binary. Each takes the arguments after its name, prints
// its result on stdout, and returns the process exit code; main.cpp turns exceptions
// into a one-line error and exit code 1.
#pragma once

#include <string>
#include <vector>

namespace rackserve::cli {

using Arguments = std::vector<std::string>;

int run_generate(const Arguments& args);
int run_logits(const Arguments& args);
int run_inspect(const Arguments& args);
int run_doctor(const Arguments& args);
// Without CUDA only --untuned-defaults works; tuning itself says so and returns 1.
int run_tune_moe(const Arguments& args);
// Built with the api module (RACKSERVE_HAVE_API).
int run_serve(const Arguments& args);
// Built with the text module (RACKSERVE_HAVE_TEXT).
int run_tokenize(const Arguments& args);
int run_detokenize(const Arguments& args);

}  // namespace rackserve::cli
