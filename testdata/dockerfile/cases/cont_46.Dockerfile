﻿FROM a
