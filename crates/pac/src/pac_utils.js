// The helper functions a browser gives every PAC file, with the semantics of
// Mozilla's pac_utils (which Chromium's PAC library follows as well).
// Written in JavaScript, as the browsers do, so that a PAC that redefines or
// wraps one of them sees ordinary functions. dnsResolve and myIpAddress are
// native (they ask the evaluator's resolver); the date functions read the
// evaluator's clock through `new Date()`.

function dnsDomainIs(host, domain) {
    return host.length >= domain.length &&
        host.substring(host.length - domain.length) == domain;
}

function dnsDomainLevels(host) {
    return host.split('.').length - 1;
}

// A dotted quad with every part at most 255.
function isValidIpAddress(ipchars) {
    var parts = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ipchars);
    if (parts == null) {
        return false;
    }
    for (var i = 1; i <= 4; i++) {
        if (parts[i] > 255) {
            return false;
        }
    }
    return true;
}

function convert_addr(ipchars) {
    var b = ipchars.split('.');
    return ((b[0] & 0xff) << 24) | ((b[1] & 0xff) << 16) |
        ((b[2] & 0xff) << 8) | (b[3] & 0xff);
}

function isInNet(ipaddr, pattern, maskstr) {
    if (!isValidIpAddress(pattern) || !isValidIpAddress(maskstr)) {
        return false;
    }
    if (!isValidIpAddress(ipaddr)) {
        ipaddr = dnsResolve(ipaddr);
        if (ipaddr == null) {
            return false;
        }
    }
    var mask = convert_addr(maskstr);
    return (convert_addr(ipaddr) & mask) == (convert_addr(pattern) & mask);
}

// A name without a dot; an IPv6 literal (with a colon) is not plain either.
function isPlainHostName(host) {
    return host.search('(\\.)|:') == -1;
}

function isResolvable(host) {
    return dnsResolve(host) != null;
}

function localHostOrDomainIs(host, hostdom) {
    return host == hostdom || hostdom.lastIndexOf(host + '.', 0) == 0;
}

// Shell expression: `*` any run, `?` one character, `.` literal; anything
// else is a regular expression as written (so `[a-z]` is a class).
function shExpMatch(url, pattern) {
    pattern = pattern.replace(/\./g, '\\.');
    pattern = pattern.replace(/\*/g, '.*');
    pattern = pattern.replace(/\?/g, '.');
    return new RegExp('^' + pattern + '$').test(url);
}

var wdays = {SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6};

var months = {JAN: 0, FEB: 1, MAR: 2, APR: 3, MAY: 4, JUN: 5,
              JUL: 6, AUG: 7, SEP: 8, OCT: 9, NOV: 10, DEC: 11};

function weekdayRange() {
    function dayOf(name) {
        return (name in wdays) ? wdays[name] : -1;
    }
    var now = new Date();
    var argc = arguments.length;
    if (argc < 1) {
        return false;
    }
    var wday;
    if (arguments[argc - 1] == 'GMT') {
        argc--;
        wday = now.getUTCDay();
    } else {
        wday = now.getDay();
    }
    var wd1 = dayOf(arguments[0]);
    var wd2 = (argc == 2) ? dayOf(arguments[1]) : wd1;
    if (wd1 == -1 || wd2 == -1) {
        return false;
    }
    // A range may wrap around the week end: weekdayRange("FRI", "MON").
    return (wd1 <= wd2) ? (wd1 <= wday && wday <= wd2)
                        : (wd2 >= wday || wday >= wd1);
}

function dateRange() {
    function monthOf(name) {
        return (name in months) ? months[name] : -1;
    }
    var now = new Date();
    var argc = arguments.length;
    if (argc < 1) {
        return false;
    }
    var isGMT = (arguments[argc - 1] == 'GMT');
    if (isGMT) {
        argc--;
    }
    if (argc == 1) {
        var one = parseInt(arguments[0]);
        if (isNaN(one)) {
            return (isGMT ? now.getUTCMonth() : now.getMonth()) == monthOf(arguments[0]);
        } else if (one < 32) {
            return (isGMT ? now.getUTCDate() : now.getDate()) == one;
        } else {
            return (isGMT ? now.getUTCFullYear() : now.getFullYear()) == one;
        }
    }
    var year = now.getFullYear();
    var from = new Date(year, 0, 1, 0, 0, 0);
    var to = new Date(year, 11, 31, 23, 59, 59);
    var adjustMonth = false;
    var i, v;
    for (i = 0; i < (argc >> 1); i++) {
        v = parseInt(arguments[i]);
        if (isNaN(v)) {
            from.setMonth(monthOf(arguments[i]));
        } else if (v < 32) {
            adjustMonth = (argc <= 2);
            from.setDate(v);
        } else {
            from.setFullYear(v);
        }
    }
    for (i = (argc >> 1); i < argc; i++) {
        v = parseInt(arguments[i]);
        if (isNaN(v)) {
            to.setMonth(monthOf(arguments[i]));
        } else if (v < 32) {
            to.setDate(v);
        } else {
            to.setFullYear(v);
        }
    }
    if (adjustMonth) {
        from.setMonth(now.getMonth());
        to.setMonth(now.getMonth());
    }
    if (isGMT) {
        now = utcAsLocal(now);
    }
    return (from <= to) ? (from <= now && now <= to)
                        : (to >= now || now >= from);
}

function timeRange() {
    var argc = arguments.length;
    var now = new Date();
    if (argc < 1) {
        return false;
    }
    var isGMT = false;
    if (arguments[argc - 1] == 'GMT') {
        isGMT = true;
        argc--;
    }
    var hour = isGMT ? now.getUTCHours() : now.getHours();
    if (argc == 1) {
        return hour == arguments[0];
    }
    if (argc == 2) {
        return arguments[0] <= hour && hour <= arguments[1];
    }
    var from = new Date();
    var to = new Date();
    if (argc == 6) {
        from.setSeconds(arguments[2]);
        to.setSeconds(arguments[5]);
    } else if (argc != 4) {
        throw 'timeRange: bad number of arguments';
    }
    var middle = argc >> 1;
    from.setHours(arguments[0]);
    from.setMinutes(arguments[1]);
    to.setHours(arguments[middle]);
    to.setMinutes(arguments[middle + 1]);
    if (middle == 2) {
        to.setSeconds(59);
    }
    if (isGMT) {
        now = utcAsLocal(now);
    }
    return (from <= to) ? (from <= now && now <= to)
                        : (to >= now || now >= from);
}

// The moment whose local fields equal `d`'s UTC fields: compares a GMT
// wall-clock time with bounds that were built in local time.
function utcAsLocal(d) {
    var r = new Date(d.getTime());
    r.setFullYear(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    r.setHours(d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds());
    return r;
}
