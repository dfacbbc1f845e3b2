FROM base
EXPOSE 80/tcp 443/udp
