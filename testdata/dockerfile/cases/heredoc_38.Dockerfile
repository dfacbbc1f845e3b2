FROM a
RUN <<${EOF}
${EOF}
