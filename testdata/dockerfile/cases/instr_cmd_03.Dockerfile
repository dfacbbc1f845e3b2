FROM base
CMD []
