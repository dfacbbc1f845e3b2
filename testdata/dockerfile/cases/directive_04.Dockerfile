# syntax=docker/dockerfile:1
# escape=`
RUN a `
b
