FROM base
CMD
