// Argument binding for builtins.
#include "text/jinja/args.h"

#include "text/jinja/value_format.h"

namespace rackserve::jinja {

ArgBinder::ArgBinder(std::string_view function, const CallArgs& args, std::initializer_list<std::string_view> names)
    : bound_(names.size(), nullptr) {
  if (args.positional.size() > names.size()) {
    throw Error(ErrorKind::Type, std::string(function) + "() takes at most " + std::to_string(names.size()) +
                                     " argument(s) (" + std::to_string(args.positional.size()) + " given)");
  }
  for (size_t i = 0; i < args.positional.size(); ++i) bound_[i] = &args.positional[i];
  for (const auto& [name, value] : args.keyword) {
    size_t index = 0;
    for (std::string_view candidate : names) {
      if (candidate == name) break;
      ++index;
    }
    if (index == names.size()) {
      throw Error(ErrorKind::Type, std::string(function) + "() got an unexpected keyword argument " + repr_string(name));
    }
    if (bound_[index] != nullptr) {
      throw Error(ErrorKind::Type, std::string(function) + "() got multiple values for argument " + repr_string(name));
    }
    bound_[index] = &value;
  }
}

const Value& ArgBinder::operator[](size_t index) const {
  static const Value kMissing;
  return has(index) ? *bound_[index] : kMissing;
}

int64_t require_int(const Value& value, std::string_view what) {
  if (value.is_integral()) return value.as_int();
  if (value.is_undefined()) value.throw_undefined();
  throw Error(ErrorKind::Type, repr_string(type_name(value)) + " object cannot be interpreted as an integer (" +
                                   std::string(what) + ")");
}

const std::string& require_string(const Value& value, std::string_view what) {
  if (value.is_string()) return value.as_string();
  if (value.is_undefined()) value.throw_undefined();
  throw Error(ErrorKind::Type, std::string(what) + " must be str, not " + std::string(type_name(value)));
}

}  // namespace rackserve::jinja
