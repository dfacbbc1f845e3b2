FROM --platform=linux/arm64 --x a
