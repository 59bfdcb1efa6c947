import enum


class ParamFlags(enum.IntFlag):
    READABLE = 1
    WRITABLE = 2
    READWRITE = 3
