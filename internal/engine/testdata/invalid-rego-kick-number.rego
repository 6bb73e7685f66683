package kickagent

# Compiles, but the result is a number, not a set of objects.
kick := 5
