FROM base
MAINTAINER me <me@x>
