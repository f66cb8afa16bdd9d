# ---- helpers shared by the Palisade label templates ----

key := input.parameters.key

values := object.get(input.parameters, "values", [])

pattern := object.get(input.parameters, "pattern", "")

hint := object.get(input.parameters, "hint", "")

value_list := concat(", ", values)

want = w {
  count(values) > 0
  w := sprintf("one of: %s", [value_list])
}

want = hint {
  count(values) == 0
  hint != ""
}

want = w {
  count(values) == 0
  hint == ""
  pattern != ""
  w := sprintf("matching %s", [pattern])
}

add_fix = fix {
  fix := sprintf("add label %s (%s)", [key, want])
}

add_fix = fix {
  not want
  fix := sprintf("add label %s", [key])
}

set_fix = fix {
  count(values) > 0
  fix := sprintf("set %s to one of: %s", [key, value_list])
}

set_fix = fix {
  count(values) == 0
  hint != ""
  fix := sprintf("set %s to %s", [key, hint])
}

set_fix = fix {
  count(values) == 0
  hint == ""
  pattern != ""
  fix := sprintf("set %s to a value matching %s", [key, pattern])
}

value_allowed(v) {
  values[_] == v
}

value_rejected(v) {
  count(values) > 0
  not value_allowed(v)
}

# The pattern must match the whole value, as in the native evaluator.
bad_value(v) = msg {
  value_rejected(v)
  msg := sprintf("label %s=%s is not allowed", [key, quote(v)])
}

bad_value(v) = msg {
  not value_rejected(v)
  pattern != ""
  not regex.match(sprintf("^(?:%s)$", [pattern]), v)
  msg := sprintf("label %s=%s does not match %s", [key, quote(v), pattern])
}

# quote renders a user-supplied value for a one-line message.
quote(v) = q {
  count(v) <= 80
  q := sprintf("%q", [v])
}

quote(v) = q {
  count(v) > 80
  q := sprintf("%q...", [substring(v, 0, 80)])
}

# show renders a value or object name bare when it holds only the characters
# a label value or name may hold, and quoted otherwise, as the native
# evaluator does: a line break must not forge a second message line.
show(v) = v {
  regex.match("^[A-Za-z0-9._-]{1,253}$", v)
}

show(v) = q {
  not regex.match("^[A-Za-z0-9._-]{1,253}$", v)
  q := quote(v)
}
