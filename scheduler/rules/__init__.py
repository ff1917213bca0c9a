"""Pure rule functions of the school domain: no I/O, plain data in and out."""
