FROM a
﻿RUN b
