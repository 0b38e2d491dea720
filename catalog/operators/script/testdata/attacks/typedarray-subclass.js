// reason: resource
class Big extends Uint16Array {}
var a = new Big(2e9);
