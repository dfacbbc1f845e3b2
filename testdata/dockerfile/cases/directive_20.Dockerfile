# syntax = docker/dockerfile:1.4
FROM a
