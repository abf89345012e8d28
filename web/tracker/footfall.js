/*! footfall tracker; see web/tracker/README.md */
(function(w,d){
"use strict"
let safe=f=>(...a)=>{try{return f(...a)}catch(e){}},
on=(t,e,f,o)=>t.addEventListener(e,safe(f),o),
n=navigator,l=location,s=d.currentScript,
ign=()=>{try{return localStorage.footfall_ignore=="true"}catch(e){}},
B=[],// unsent events
T=0,// visible ms not reported yet
V=0,// visible since (0: hidden)
Y=0,// deepest scroll, px
R=0,// scroll % reported for this page view
now=()=>performance.now(),
D,api,H,Q,hold,last,pu
try{
D=s.dataset
api=D.api||new URL("/api/track",s.src).href
H="hash"in D
Q=w.footfall
if(Q&&Q.ff)return
Q=Q&&Q.q||[]
if(!("includeLocalhost"in D)&&/^(localhost|127(\.\d+){3}|\[::1\]|)$/.test(l.hostname)||ign()||"respectDnt"in D&&(n.doNotTrack||w.doNotTrack)==1)return w.footfall=()=>{}
}catch(e){return}

let url=()=>{
let u=new URL(l.href),p=new URLSearchParams
if(!("keepQuery"in D)){
u.searchParams.forEach((v,k)=>/^utm_(source|medium|campaign|term|content)$/.test(k)&&p.append(k,v))
u.search=p
}
H||(u.hash="")
return u.href.slice(0,2e3)
},

props=o=>Object.fromEntries(Object.entries(o||{}).filter(e=>e[1]!=null).slice(0,30).map(([k,v])=>[k,[...""+v].slice(0,256).join("")])),

ev=(name,p,u)=>({site:D.site||l.hostname,name,url:u||url(),referrer:d.referrer.slice(0,2e3),props:props(p),screen_width:w.innerWidth}),

add=e=>B.push(e)>19&&flush(),

flush=(b,ok)=>{
b=B
B=[]
if(b.length&&!ign()){
b=JSON.stringify(b)
try{ok=n.sendBeacon(api,b)}catch(e){}
// a string body is sent as text/plain: no CORS preflight
ok||fetch(api,{method:"POST",body:b,keepalive:!0}).catch(e=>0)
}
},

scroll=()=>Y=Math.max(Y,scrollY+innerHeight),

engage=t=>{
t=now()
V&&(T+=t-V,V=t)
scroll()
if(pu&&(t=Math.round(T))>0){
// both as increments, so that the reports of one page view add up to its time and depth
let p=Math.min(100,Math.round(Y*100/(d.documentElement.scrollHeight||1)))
add(ev("engagement",{time:t,scroll:p-R},pu))
R=p
T=0
}
},

hide=()=>{engage();V=0;flush()},

pageview=k=>{
k=l.pathname+(H?l.hash:"")
if(k!=last){
engage()
last=k
pu=url()
T=Y=R=0
V=d.hidden?0:now()
scroll()
add(ev("pageview",0,pu))
"404"in D&&d.querySelector("meta[name=footfall-404]")&&add(ev("404",{path:l.pathname},pu))
hold||flush()
}
},

click=e=>{
let t=e.target,aux=e.type=="auxclick",
c=t.closest&&t.closest("[data-footfall-click]"),
a=t.closest&&t.closest("a[href]"),
u={url:a&&a.href}
if(aux&&e.button!=1)return
c&&!aux&&add(ev(c.dataset.footfallClick,{element:c.id||c.localName,page:l.pathname}))
a&&("downloads"in D&&/\.(pdf|xlsx|docx|txt|rtf|csv|exe|key|pps|pptx?|7z|pkg|rar|gz|zip|avi|mov|mp4|mpeg|wmv|midi|mp3|wav|wma|dmg|iso|msi)$/i.test(a.pathname)?add(ev("File Download",u)):"outbound"in D&&/^http/.test(a.protocol)&&a.host!=l.host&&add(ev("Outbound Link: Click",u)))
},

boot=()=>{
let f=w.footfall=safe((m,o)=>m&&add(ev(m,o&&o.props))),h=history
f.ff=1
for(let m of["pushState","replaceState"]){
let o=h[m],p=safe(pageview)
h[m]=function(){let r=o.apply(this,arguments);p();return r}
}
on(w,"popstate",pageview)
H&&on(w,"hashchange",pageview)
on(d,"visibilitychange",()=>d.hidden?hide():V||(V=now()))
on(w,"pagehide",hide)
on(w,"pageshow",e=>e.persisted&&(last=V=0,pageview()))// back from the bfcache
on(w,"scroll",scroll)
on(d,"click",click,!0)
on(d,"auxclick",click,!0)
setInterval(safe(flush),1e4)
hold=1// the first pageview goes with the calls queued before the script
pageview()
Q.forEach(a=>f(...a))
hold=0
flush()
}

d.prerendering?on(d,"prerenderingchange",boot):safe(boot)()
})(window,document)
