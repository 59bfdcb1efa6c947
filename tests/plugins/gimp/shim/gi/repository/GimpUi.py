def init(name):
    raise RuntimeError("the GIMP shim has no UI: run procedures non-interactively")
